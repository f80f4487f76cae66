"""No lost work: damaged files are reported by name, never half-read; writes are atomic.

What ``tests/training/test_train.py``, ``test_cli.py`` and ``test_data.py``
already prove is not repeated here (atomic write on an exception, truncated and
garbage checkpoints, NaN loss keeps the last good checkpoint, Ctrl-C in a real
process then ``--resume`` reaching the uninterrupted run's exact weights, bad
IDX headers).  This file adds the exhaustive and the violent cases:

* single-bit flips of every zip record byte, of the .npy headers and across the
  data, and truncations of a checkpoint either load the identical content or raises CheckpointError naming the file -- never another
  exception, never different data (NumPy's zip members carry CRC-32s);
* the same for a gzip-compressed IDX dataset file (gzip CRC), and for the
  header of a plain IDX file (no checksum there: a flip may give another valid
  header, but never another exception);
* a process killed with SIGKILL in the middle of writing a checkpoint, or
  interrupted by Ctrl-C (KeyboardInterrupt) there, leaves the previous
  checkpoint intact and loadable;
* loading a checkpoint into a different model lists the missing, unexpected
  and mismatched keys with both shapes, and leaves the model untouched.
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from minipool import checkpoint, optim, train
from minipool.data.idx import IDXError, read_idx, write_idx
from minipool.models import build_model
from minipool.nn import Linear
from minipool.tensor import Tensor


def same_content(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same_content(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_content, a, b))
    if isinstance(a, Tensor):
        return type(b) is type(a) and same_content(a.numpy(), b.numpy())
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def small_checkpoint(path):
    model = Linear(4, 3)
    opt = optim.SGD(list(model.parameters()), lr=0.1, momentum=0.9)
    checkpoint.save_checkpoint(path, {"epoch": 1, "note": "ok"},
                               {"model": model.state_dict(), "optimizer": opt.state_dict()})
    return checkpoint.load_checkpoint(path)


def test_bit_flips_and_truncations_of_a_checkpoint_are_caught_or_harmless(tmp_path):
    good = tmp_path / "good.safetensors"
    original = small_checkpoint(good)
    raw = good.read_bytes()
    bad = tmp_path / "damaged.safetensors"
    harmless = caught = 0
    header_end = 8 + int.from_bytes(raw[:8], "little")
    # every bit of the length prefix and the JSON header, one bit of every 7th data byte,
    # every 5th length
    flip = lambda i, bit: raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1:]  # noqa: E731
    variants = [flip(i, bit) for i in range(header_end) for bit in range(8)]
    variants += [flip(i, i % 8) for i in range(header_end, len(raw), 7)]
    variants += [raw[:n] for n in range(0, len(raw), 5)]
    for data in variants:
        bad.write_bytes(data)
        try:
            loaded = checkpoint.load_checkpoint(bad)
        except checkpoint.CheckpointError as e:
            assert "damaged.safetensors" in str(e)
            caught += 1
        else:  # e.g. a flip in safetensors' own "format" tag: the content must be the original
            assert same_content(loaded, original)
            harmless += 1
    assert caught > 0.9 * len(variants) and harmless > 0  # both branches really happen


@pytest.mark.parametrize("gz", [True, False])
def test_bit_flips_and_truncations_of_an_idx_file_name_the_file(tmp_path, gz):
    images = np.arange(3 * 5 * 5, dtype=np.uint8).reshape(3, 5, 5)
    good = tmp_path / ("good-idx3-ubyte" + (".gz" if gz else ""))
    write_idx(good, images)
    raw = good.read_bytes()
    bad = tmp_path / ("bad-idx3-ubyte" + (".gz" if gz else ""))
    # a plain file has no checksum: flip only its 16-byte header (data bytes are just data)
    positions = range(len(raw)) if gz else range(16)
    variants = [raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1:]
                for i in positions for bit in range(8)] + [raw[:n] for n in range(len(raw))]
    caught = 0
    for data in variants:
        bad.write_bytes(data)
        try:
            got = read_idx(bad)
        except IDXError as e:
            assert bad.name in str(e)
            caught += 1
        else:
            if gz:  # the gzip CRC guards the data: whatever loads is the original
                assert got.dtype == images.dtype and np.array_equal(got, images)
            else:   # e.g. type code 0x08 -> 0x09: a valid int8 file of the same bytes
                assert got.size * got.itemsize == images.size
    assert caught > 0.7 * len(variants)


WRITER = """
import os, signal, sys
import numpy as np
from minipool import checkpoint

path = sys.argv[1]
mode = sys.argv[2]
def write(f):
    np.savez(f, big=np.ones(2_000_000))   # the new content, 16 MB
    f.flush()
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)   # dies with the temp file half-written
    raise KeyboardInterrupt                  # Ctrl-C during the write
try:
    checkpoint.atomic_write_bytes(path, write)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("mode,returncode", [("kill", -signal.SIGKILL), ("ctrl-c", 130)])
def test_dying_while_writing_keeps_the_previous_checkpoint(tmp_path, mode, returncode):
    path = tmp_path / "last.safetensors"
    original = small_checkpoint(path)
    proc = subprocess.run([sys.executable, "-c", WRITER, str(path), mode], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == returncode, proc.stderr[-2000:]
    assert same_content(checkpoint.load_checkpoint(path), original)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "last.safetensors")
    if mode == "ctrl-c":
        assert leftovers == []  # the interrupted writer removed its temporary file
    else:  # SIGKILL cannot clean up: only a hidden temp file may remain, never the target
        assert all(name.startswith(".last.safetensors.") and name.endswith(".tmp") for name in leftovers)


def test_loading_into_another_model_lists_keys_and_shapes_and_changes_nothing():
    modern = build_model("lenet5", seed=0)
    classic = build_model("lenet5-classic", seed=0)
    before = {k: v.clone() for k, v in classic.state_dict().items()}
    with pytest.raises(ValueError) as info:
        classic.load_state_dict(modern.state_dict())
    message = str(info.value)
    for key in ("c1.weight", "output.prototypes"):        # missing from the checkpoint
        assert key in message
    for key in ("conv1.weight", "fc3.bias"):              # unexpected in this model
        assert key in message
    assert "missing" in message and "unexpected" in message
    assert all(np.array_equal(v, before[k]) for k, v in classic.state_dict().items())

    other = build_model("lenet5", seed=1)
    state = dict(modern.state_dict(), **{"fc1.weight": np.zeros((120, 256), np.float32)})
    kept = other.state_dict()["conv1.weight"].clone()
    with pytest.raises(ValueError, match=r"fc1\.weight: checkpoint \(120, 256\) vs model \(120, 400\)"):
        other.load_state_dict(state)
    np.testing.assert_array_equal(other.state_dict()["conv1.weight"], kept)  # nothing copied


def test_a_checkpoint_whose_weights_do_not_fit_names_the_file_and_the_key(tmp_path):
    model = build_model("lenet5", seed=0)
    state = model.state_dict()
    state["conv2.weight"] = np.zeros((16, 6, 3, 3), np.float32)
    path = tmp_path / "tampered.safetensors"
    checkpoint.save_checkpoint(path, {"model": {"name": "lenet5", "config": {"seed": 0}}},
                               {"model": state})
    with pytest.raises(train.TrainError) as info:
        train.load_model_from_checkpoint(path)
    message = str(info.value)
    assert "tampered.safetensors" in message and "conv2.weight" in message and "(16, 6, 5, 5)" in message
