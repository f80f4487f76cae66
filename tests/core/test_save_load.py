"""mp.save / mp.load: safetensors files written and read by minipool, checked byte by byte,
against the `safetensors` package (PyTorch's writer and reader), and against damage."""
import io
import json
import math
import os
import struct
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool.models import LeNet5
from minipool.serialization import SerializationError, load_file, save_file

# safetensors name -> (NumPy dtype, bytes per element), from the format's specification
SPEC = {"F16": ("<f2", 2), "F32": ("<f4", 4), "F64": ("<f8", 8), "I8": ("i1", 1), "I16": ("<i2", 2),
        "I32": ("<i4", 4), "I64": ("<i8", 8), "U8": ("u1", 1), "U16": ("<u2", 2), "U32": ("<u4", 4),
        "U64": ("<u8", 8), "BOOL": ("?", 1)}


def parse_by_hand(raw):
    """An independent reader: (header dict, data bytes)."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    return header, raw[8 + n:]


def write_by_hand(tensors, metadata=None, pad=True):
    """An independent writer: a list of (name, array) -> bytes, in the given order."""
    header, data = {}, b""
    for name, (code, array) in tensors:
        raw = np.ascontiguousarray(array, dtype=SPEC[code][0]).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + data


def sample(code, shape, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(SPEC[code][0])
    if code == "BOOL":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# ------------------------------------------------------------------ the format, by hand
@pytest.mark.parametrize("code", sorted(SPEC))
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 2, 3, 4)])
def test_each_dtype_and_shape_is_written_as_the_spec_says(tmp_path, code, shape):
    array = sample(code, shape)
    path = tmp_path / "t.safetensors"
    mp.save({"x": array, "y": mp.tensor(array)}, path)
    raw = path.read_bytes()
    header, data = parse_by_hand(raw)
    assert (8 + struct.unpack("<Q", raw[:8])[0]) % 8 == 0      # data 8-byte aligned
    assert set(header) == {"x", "y", "__metadata__"}
    for name in ("x", "y"):
        info = header[name]
        assert info["dtype"] == code and info["shape"] == list(shape)
        begin, end = info["data_offsets"]
        assert end - begin == int(np.prod(shape)) * SPEC[code][1]
        got = np.frombuffer(data[begin:end], SPEC[code][0]).reshape(shape)
        np.testing.assert_array_equal(got, array)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in header["__metadata__"].items())
    back = mp.load(path)
    assert isinstance(back["x"], np.ndarray) and isinstance(back["y"], mp.Tensor)
    for value in (back["x"], back["y"].numpy()):
        assert value.dtype == array.dtype and value.shape == shape and value.dtype.isnative
        np.testing.assert_array_equal(value, array)


@pytest.mark.parametrize("code", sorted(SPEC))
def test_a_file_written_by_hand_loads_as_name_to_tensor(tmp_path, code):
    a, b = sample(code, (3, 2), 1), sample(code, (5,), 2)
    path = tmp_path / "hand.safetensors"
    path.write_bytes(write_by_hand([("b", (code, b)), ("a", (code, a))], pad=False))
    out = mp.load(path)
    assert list(out) == ["b", "a"] and all(isinstance(v, mp.Tensor) for v in out.values())
    np.testing.assert_array_equal(out["a"].numpy(), a)
    np.testing.assert_array_equal(out["b"].numpy(), b)
    assert out["a"].numpy().flags.writeable


def test_non_contiguous_big_endian_and_nonfinite_arrays(tmp_path):
    base = np.arange(24, dtype=">f8").reshape(4, 6)
    base[0, 0], base[1, 1], base[2, 2] = np.nan, np.inf, -0.0
    view = base[::2, ::3].T
    path = tmp_path / "v.safetensors"
    mp.save({"v": view}, path)
    back = mp.load(path)["v"]
    assert back.dtype == np.float64 and back.dtype.isnative
    np.testing.assert_array_equal(back, view)
    assert np.signbit(back[0, 1]) == np.signbit(view[0, 1])


def test_state_dict_round_trip_into_a_model(tmp_path):
    net = LeNet5(seed=0)
    path = tmp_path / "lenet.safetensors"
    mp.save(net.state_dict(), path)
    header, _ = parse_by_hand(path.read_bytes())
    assert [k for k in header if k != "__metadata__"] == list(net.state_dict())   # PyTorch's key names
    other = LeNet5(seed=1)
    other.load_state_dict(mp.load(path))
    x = mp.randn(2, 1, 32, 32, generator=0)
    np.testing.assert_array_equal(other(x).numpy(), net(x).numpy())


def test_optimizer_state_round_trip_continues_identically(tmp_path):
    def make():
        net = LeNet5(seed=0)
        return net, mp.optim.Adam(net.parameters(), lr=1e-2, betas=(0.8, 0.95))

    def step(net, opt, seed):
        opt.zero_grad()
        x = mp.randn(4, 1, 32, 32, generator=seed)
        F.cross_entropy(net(x), mp.tensor([0, 1, 2, 3])).backward()
        opt.step()

    net, opt = make()
    for s in range(3):
        step(net, opt, s)
    path = tmp_path / "ck.safetensors"
    mp.save({"model": net.state_dict(), "optim": opt.state_dict(), "epoch": 3}, path)
    saved = opt.state_dict()
    ck = mp.load(path)
    assert ck["epoch"] == 3
    assert ck["optim"]["param_groups"][0]["betas"] == (0.8, 0.95)
    assert sorted(ck["optim"]["state"]) == sorted(saved["state"])                 # int keys
    assert ck["optim"]["state"][0]["step"] == saved["state"][0]["step"] == 3
    net2, opt2 = make()
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optim"])
    step(net, opt, 10)
    step(net2, opt2, 10)
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_nested_python_values_survive(tmp_path):
    obj = {"ints": {0: 1, -5: 2**70}, "floats": [0.1, -0.0, math.inf, -math.inf, math.nan, 1e-320],
           "tuple": (1, "two", None, True, False), "nested": [[{"a": np.arange(3)}], ()],
           7: "int key", (1, 2): "tuple key", "scalar": np.float32(2.5), "empty": {},
           "od": OrderedDict([("z", 1), ("a", 2)]), "unicode": "ünï ☃"}
    path = tmp_path / "n.safetensors"
    mp.save(obj, path)
    back = mp.load(path)
    assert back["ints"] == {0: 1, -5: 2**70} and back[7] == "int key" and back[(1, 2)] == "tuple key"
    assert back["tuple"] == (1, "two", None, True, False) and isinstance(back["tuple"], tuple)
    f = back["floats"]
    assert f[0] == 0.1 and math.copysign(1, f[1]) == -1 and f[2] == math.inf and f[3] == -math.inf
    assert math.isnan(f[4]) and f[5] == 1e-320
    np.testing.assert_array_equal(back["nested"][0][0]["a"], np.arange(3))
    assert back["nested"][1] == () and back["empty"] == {} and back["scalar"] == 2.5
    assert isinstance(back["od"], OrderedDict) and list(back["od"]) == ["z", "a"]
    assert back["unicode"] == "ünï ☃"


def test_parameters_and_requires_grad_come_back():
    p = mp.nn.Parameter(mp.ones(2))
    t = mp.tensor([1.0], requires_grad=True)
    buf = io.BytesIO()
    mp.save({"p": p, "t": t, "plain": mp.zeros(1), "alone": [p]}, buf)
    buf.seek(0)
    back = mp.load(buf)
    assert isinstance(back["p"], mp.nn.Parameter) and back["p"].requires_grad
    assert back["t"].requires_grad and not isinstance(back["t"], mp.nn.Parameter)
    assert not back["plain"].requires_grad
    assert isinstance(mp.load(io.BytesIO(_bytes_of(mp.ones(3)))), mp.Tensor)


def _bytes_of(obj):
    buf = io.BytesIO()
    mp.save(obj, buf)
    return buf.getvalue()


def test_colliding_path_names_stay_distinct():
    obj = {"a.b": np.zeros(1), "a": {"b": np.ones(1)}}
    back = mp.load(io.BytesIO(_bytes_of(obj)))
    assert back["a.b"][0] == 0 and back["a"]["b"][0] == 1


# ------------------------------------------------------------------ PyTorch's safetensors
def test_pytorch_safetensors_file_loads_into_minipool(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    from minipool.models.lenet import lenet5_torch
    torch.manual_seed(0)
    theirs = lenet5_torch(torch)
    extra = {"f16": torch.randn(3, 2).half(), "i64": torch.arange(-3, 3), "i32": torch.tensor(7, dtype=torch.int32),
             "u8": torch.arange(250, 256, dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
             "empty": torch.zeros(0, 4), "f64": torch.randn(2, dtype=torch.float64)}
    path = tmp_path / "torch.safetensors"
    st_torch.save_file({**theirs.state_dict(), **extra}, str(path))
    loaded = mp.load(path)
    for k, v in {**theirs.state_dict(), **extra}.items():
        assert loaded[k].dtype == np.dtype(str(v.numpy().dtype)), k
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy(), err_msg=k)
    ours = LeNet5()
    ours.load_state_dict({k: loaded[k] for k in theirs.state_dict()})
    x = torch.randn(3, 1, 32, 32, dtype=torch.float32)
    np.testing.assert_allclose(ours(mp.tensor(x.numpy())).numpy(), theirs(x).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_minipool_files_load_with_pytorch_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    net = LeNet5(seed=3)
    values = {**net.state_dict(), "f16": np.float16([1.5, -2.25]), "i64": np.arange(5),
              "i32": np.int32([[-1, 2]]), "u8": np.uint8([0, 255]), "bool": np.array([True, False]),
              "scalar": np.array(2.5), "empty": np.zeros((0, 2), np.float32)}
    path = tmp_path / "mp.safetensors"
    mp.save(values, path)
    theirs = st_torch.load_file(str(path))
    assert set(theirs) == set(values)
    for k, v in values.items():
        assert str(theirs[k].numpy().dtype) == str(v.dtype), k
        np.testing.assert_array_equal(theirs[k].numpy(), v, err_msg=k)
    from minipool.models.lenet import lenet5_torch
    model = lenet5_torch(torch)
    model.load_state_dict({k: theirs[k] for k in net.state_dict()})
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), net(mp.tensor(x)).numpy(),
                               rtol=1e-5, atol=1e-6)
    # the nested optimizer file is valid safetensors too, and save_file writes a plain one
    opt = mp.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(mp.ones(1, 1, 32, 32)).sum().backward()
    opt.step()
    mp.save(opt.state_dict(), tmp_path / "opt.safetensors")
    flat = st_torch.load_file(str(tmp_path / "opt.safetensors"))
    np.testing.assert_array_equal(flat["state.0.momentum_buffer"].numpy(),
                                  opt.state_dict()["state"][0]["momentum_buffer"])
    save_file({"a": np.arange(3.0)}, tmp_path / "plain.safetensors", metadata={"k": "v"})
    assert st_torch.load_file(str(tmp_path / "plain.safetensors"))["a"].tolist() == [0.0, 1.0, 2.0]
    from safetensors import safe_open
    with safe_open(str(tmp_path / "plain.safetensors"), "np") as fh:
        assert fh.metadata() == {"k": "v"}
    assert load_file(tmp_path / "opt.safetensors").keys() == flat.keys()


# ------------------------------------------------------------------ damage and bad input
def _good_bytes():
    return _bytes_of({"w": np.arange(6.0).reshape(2, 3), "n": 3, "b": np.array([True])})


def test_every_truncation_is_a_clear_error(tmp_path):
    raw = _good_bytes()
    path = tmp_path / "cut.safetensors"
    for cut in range(len(raw)):
        path.write_bytes(raw[:cut])
        with pytest.raises(SerializationError, match=str(path).replace("\\", "\\\\")):
            mp.load(path)


@pytest.mark.parametrize("what,fragment,make", [
    ("empty", 'shorter than the 8-byte', lambda: b""),
    ("npz", 'runs past the end', lambda: b"PK\x03\x04" + b"\0" * 60),
    ("text", 'over the', lambda: b"hello, this is not a tensor file at all"),
    ("huge header length", 'over the', lambda: struct.pack("<Q", 2**63) + b"{}"),
    ("header not json", 'unreadable JSON', lambda: struct.pack("<Q", 4) + b"{abc"),
    ("header not an object", 'does not start with', lambda: struct.pack("<Q", 2) + b"[]"),
    ("not utf-8", 'utf-8', lambda: struct.pack("<Q", 3) + b"{\xff}"),
    ("duplicate key", "duplicate key 'a'", lambda: _raw_header(b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},'
                                          b'"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}')),
    ("unknown dtype", 'BF16', lambda: _with_header({"a": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}},
                                           b"\0\0")),
    ("negative dim", 'shape must be', lambda: _with_header({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}})),
    ("bool dim", 'shape must be', lambda: _with_header({"a": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, b"\1")),
    ("size mismatch", 'needs 8 bytes', lambda: _with_header({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4)),
    ("overlap", 'overlapping', lambda: _with_header({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                                      "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"\0" * 3)),
    ("gap", 'or a gap', lambda: _with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"\0" * 2)),
    ("trailing bytes", 'trailing bytes', lambda: _with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0" * 2)),
    ("missing field", 'expected dtype, shape and data_offsets', lambda: _with_header({"a": {"dtype": "U8", "shape": [1]}}, b"\0")),
    ("bad offsets", 'data_offsets must be', lambda: _with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 0]}}, b"\0")),
    ("metadata not str", '__metadata__ must map', lambda: _with_header({"__metadata__": {"a": 1}})),
    ("bad minipool json", 'minipool metadata', lambda: _with_header({"__metadata__": {"minipool": "{nope"}})),
    ("newer version", 'newer minipool', lambda: _with_header({"__metadata__": {"minipool": '{"version": 99, "structure": 1}'}})),
    ("dangling tensor", "'gone'", lambda: _with_header({"__metadata__": {
        "minipool": '{"version": 1, "structure": {"__ndarray__": "gone"}}'}})),
    ("unlisted tensor", 'not in its minipool structure', lambda: _with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                                              "__metadata__": {"minipool": '{"version": 1, "structure": 5}'}},
                                             b"\0")),
    ("bad node", 'unknown node', lambda: _with_header({"__metadata__": {"minipool": '{"version": 1, "structure": {"x": 1}}'}})),
])
def test_broken_files_raise_naming_the_file(tmp_path, what, fragment, make):
    path = tmp_path / f"{what.replace(' ', '_')}.safetensors"
    path.write_bytes(make())
    with pytest.raises(SerializationError) as err:
        mp.load(path)
    assert str(path) in str(err.value) and fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def _with_header(header, data=b""):
    return _raw_header(json.dumps(header).encode(), data)


def _raw_header(text, data=b""):
    return struct.pack("<Q", len(text)) + text + data


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        mp.load(tmp_path / "nope.safetensors")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_corruption_never_crashes(data):
    raw = bytearray(_good_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        out = mp.load(io.BytesIO(bytes(raw)))
    except SerializationError:
        return
    assert isinstance(out, dict)   # a flip inside the data bytes still loads, values differ


@pytest.mark.parametrize("bad,msg", [({"x": {1, 2}}, "x of type set"), (object(), "type object"),
                                     ({"c": np.array([1j])}, "complex128"),
                                     ({"o": np.array(["a"])}, "<U1"), ([lambda: 0], "function")])
def test_unstorable_objects_raise_and_leave_the_old_file(tmp_path, bad, msg):
    path = tmp_path / "keep.safetensors"
    mp.save({"w": np.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=msg):
        mp.save(bad, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.safetensors"]      # no temporary left behind


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.safetensors"
    mp.save({"w": np.ones(2)}, path)
    before = path.read_bytes()
    import minipool.serialization as ser

    def broken(f, head, blobs):
        f.write(head[:5])
        raise OSError("disk full")
    monkeypatch.setattr(ser, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        mp.save({"w": np.zeros(100)}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["keep.safetensors"]


def test_no_pickle_anywhere():
    import inspect
    import minipool.serialization as ser
    source = inspect.getsource(ser)
    assert "pickle" not in source.replace("no pickle anywhere", "")
    assert "allow_pickle" not in source


def test_a_flipped_bit_in_the_data_or_structure_of_a_saved_file_is_caught(tmp_path):
    """safetensors has no checksum; minipool's files carry a CRC-32 of structure and data."""
    path = tmp_path / "w.safetensors"
    mp.save({"weight": mp.tensor(np.arange(8, dtype=np.float32)), "step": 3}, path)
    raw = path.read_bytes()
    header_end = 8 + int.from_bytes(raw[:8], "little")
    for i in (len(raw) - 1, header_end, raw.index(b'\\"step\\",3') + len(b'\\"step\\",')):
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:])
        with pytest.raises(mp.serialization.SerializationError, match="CRC-32"):
            mp.load(path)


def test_files_of_format_1_without_a_checksum_still_load(tmp_path):
    """Files written before the checksum existed (format 1) keep loading."""
    from minipool import serialization
    path = tmp_path / "old.safetensors"
    structure = {"__dict__": [["w", {"__tensor__": "w"}]], "ordered": False}
    meta = {"format": "pt", "minipool": json.dumps({"version": 1, "structure": structure})}
    head, blobs = serialization._encode_file({"w": np.ones(3, np.float32)}, meta)
    with open(path, "wb") as f:
        serialization._write(f, head, blobs)
    np.testing.assert_array_equal(mp.load(path)["w"].numpy(), np.ones(3, np.float32))
