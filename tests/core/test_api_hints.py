"""The public API explains itself: hints, doctests, citations that resolve, one argument checker.

* every public function of ``minipool.nn.functional`` has a docstring with a doctest and
  type hints on every named parameter and its return;
* every layer exported by ``minipool.nn`` hints its own ``__init__`` and ``forward``;
* Tensor's and Function's public methods are hinted;
* every "docs/semantics.md section N" in the code and tests names a section that exists, and
  nothing cites the old guide outside the repository;
* the shared checkers of ``minipool._validate`` and ``minipool.ops._layout.Layout`` behave as
  each op relied on before they were merged.
"""
import inspect
import pathlib
import re

import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from minipool import _validate as V
from minipool.nn.module import Module
from minipool.ops._layout import Layout
from minipool.tensor import Function, Tensor
from tests.helpers import CHECKOUT

ROOT = pathlib.Path(CHECKOUT)


def _public_functions():
    for name in sorted(dir(F)):
        obj = getattr(F, name)
        if name.startswith("_") or inspect.isclass(obj) or inspect.ismodule(obj) or not callable(obj):
            continue
        yield name, obj


def _unhinted(fn, skip_first=False):
    """Names of the parameters (and 'return') of ``fn`` that carry no annotation."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1 if skip_first else 0:]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty
               and p.kind not in (p.VAR_KEYWORD,) and not (p.kind == p.VAR_POSITIONAL
                                                          and p.name in ("args",))]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_every_functional_op_has_a_doctest():
    bare = [name for name, fn in _public_functions() if ">>>" not in (inspect.getdoc(fn) or "")]
    assert bare == []


def test_every_functional_op_is_hinted():
    missing = {name: m for name, fn in _public_functions() if (m := _unhinted(fn))}
    assert missing == {}


def test_every_layer_hints_its_init_and_forward():
    missing = {}
    for name in dir(nn):
        cls = getattr(nn, name)
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            continue
        for method in ("__init__", "forward"):
            fn = cls.__dict__.get(method)
            if fn is not None and (m := _unhinted(fn, skip_first=True)):
                missing[f"{name}.{method}"] = m
    assert missing == {}


def test_tensor_and_function_public_methods_are_hinted():
    missing = {}
    for cls in (Tensor, Function):
        for name, member in cls.__dict__.items():
            if name.startswith("_") and name != "__init__":
                continue
            fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if not inspect.isfunction(fn):
                continue
            first = next(iter(inspect.signature(fn).parameters), None)
            if m := _unhinted(fn, skip_first=first in ("self", "cls", "ctx")):
                missing[f"{cls.__name__}.{name}"] = m
    assert missing == {}


def _source_files():
    for folder in ("minipool", "tests", "benchmarks", "examples"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".pyx", ".pxd", ".md") and "__pycache__" not in path.parts:
                yield path


def test_semantics_citations_name_existing_sections():
    doc = (ROOT / "docs" / "semantics.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", doc, re.M)}
    assert sections == set(range(1, max(sections) + 1))
    cited = 0
    for path in list(_source_files()) + [ROOT / "README.md"]:
        text = path.read_text(errors="replace")
        guide = "shared/" + "guide"  # spelled apart so this file does not match itself
        assert guide not in text, f"{path} cites the guide outside the repository"
        for match in re.finditer(r"semantics\.md\s+(?:sections?\s+)?([\d.,\- and]+)", text):
            before = text[max(0, match.start() - 5):match.start()]
            assert before.endswith("docs/"), f"{path}: {text[match.start() - 20:match.end()]!r}"
            numbers = [int(n) for n in re.findall(r"\d+(?:\.\d+)?", match.group(1))
                       if "." not in n]
            assert numbers and set(numbers) <= sections, (path, match.group(0))
            cited += 1
    assert cited >= 10  # the pooling and upsampling code and tests do cite it


# ----------------------------------------------------------------------------- shared checkers
@pytest.mark.parametrize("value, expected", [(None, False), ("channels_first", False),
                                             ("channels_last", True), ("CHANNELS_LAST", True),
                                             ("Channels_First", False)])
def test_parse_data_format_default_channels_first(value, expected):
    assert V.parse_data_format("op", value) is expected


def test_parse_data_format_keras_default_and_errors():
    assert V.parse_data_format("Conv2D", None, default="channels_last") is True
    for bad in ("NHWC", 1, "", b"channels_last"):
        with pytest.raises(ValueError, match=r"^Conv2D: data_format must be 'channels_first' or "
                                             r"'channels_last', got"):
            V.parse_data_format("Conv2D", bad)


def test_every_op_reads_data_format_the_same_way():
    # one parser: None and any case work for pooling, interpolate, repeat_upsample and conv alike
    x = mp.tensor(np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3))
    pooled = F.max_pool2d(x, 2, data_format="Channels_Last").numpy()
    assert pooled.shape == (2, 2, 2, 3)
    grown = F.interpolate(x, scale_factor=2, data_format="CHANNELS_LAST").numpy()
    assert grown.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(grown[:, ::2, ::2], x.numpy())
    first = mp.tensor(np.moveaxis(x.numpy(), -1, 1).copy())
    np.testing.assert_array_equal(F.interpolate(first, scale_factor=2, data_format=None).numpy(),
                                  np.moveaxis(grown, -1, 1))
    for fn in (lambda: F.interpolate(x, scale_factor=2, data_format="NHWC"),
               lambda: F.max_pool2d(x, 2, data_format="NHWC"),
               lambda: nn.UpSampling2D(data_format="NHWC")):
        with pytest.raises(ValueError, match="data_format must be 'channels_first' or 'channels_last'"):
            fn()


@pytest.mark.parametrize("value, rank, expected", [(3, 2, (3, 3)), ((3,), 3, (3, 3, 3)),
                                                   ([1, 2], 2, (1, 2)),
                                                   (np.int64(2), 1, (2,))])
def test_int_tuple_accepts(value, rank, expected):
    assert V.int_tuple(value, rank, "kernel_size", "max_pool2d", 1) == expected


@pytest.mark.parametrize("value, error, message", [
    (True, TypeError, r"max_pool2d: kernel_size must be an int or a tuple of 2 ints, got True"),
    (2.0, TypeError, "tuple of 2 ints"), ((1, 2, 3), TypeError, "tuple of 2 ints"),
    (0, ValueError, r"max_pool2d: kernel_size must be >= 1, got 0"),
    ((1, 2 ** 63), ValueError, "must be <= ")])
def test_int_tuple_refuses_by_name(value, error, message):
    with pytest.raises(error, match=message):
        V.int_tuple(value, 2, "kernel_size", "max_pool2d", 1)


def test_int_pair_and_single_int_messages():
    assert V.int_pair(3, "stride", "conv2d", 1) == (3, 3)
    with pytest.raises(ValueError, match=r"conv2d: stride must be an int or a pair of ints"):
        V.int_pair((1, 2, 3), "stride", "conv2d", 1)
    with pytest.raises(TypeError, match=r"conv2d: stride must be an int or a pair of ints"):
        V.int_pair((1, 2.0), "stride", "conv2d", 1)
    with pytest.raises(ValueError, match=r"conv2d: stride must be <= 7, got \(8, 1\)"):
        V.int_pair((8, 1), "stride", "conv2d", 1, 7)
    assert V.single_int(np.int32(4), "upscale_factor", "pixel_shuffle") == 4
    with pytest.raises(TypeError, match="pixel_shuffle: upscale_factor must be an int, got 2.0"):
        V.single_int(2.0, "upscale_factor", "pixel_shuffle")
    with pytest.raises(ValueError, match="pixel_shuffle: upscale_factor must be >= 1, got 0"):
        V.single_int(0, "upscale_factor", "pixel_shuffle")


def test_conv_layer_and_functional_share_the_padding_rule():
    with pytest.raises(ValueError, match="^Conv2d: padding must be an int, a pair, 'same' or 'valid'"):
        nn.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="^conv2d: padding must be an int, a pair, 'same' or 'valid'"):
        F.conv2d(mp.zeros(1, 1, 4, 4), mp.zeros(1, 1, 3, 3), padding="full")
    with pytest.raises(ValueError, match=r"^Conv2d: padding='same' needs stride 1"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    assert nn.Conv2d(1, 1, 3, padding="same")(mp.zeros(1, 1, 5, 5)).shape == (1, 1, 5, 5)


@pytest.mark.parametrize("shape, rank, last", [((2, 3, 4, 5), 2, False), ((3, 4, 5), 2, False),
                                               ((2, 4, 5, 3), 2, True), ((4, 5, 3), 2, True),
                                               ((2, 3, 7), 1, False), ((2, 3, 2, 3, 4), 3, False)])
def test_layout_views_cover_the_input(shape, rank, last):
    lay = Layout(shape, rank, last)
    planes, cells, channels = lay.view
    assert planes * cells * channels == int(np.prod(shape))
    assert cells == int(np.prod(lay.spatial))
    five = lay.view5()
    assert len(five) == 5 and int(np.prod(five)) == int(np.prod(shape))
    assert five[-1 - rank:-1] == lay.spatial
    grown = tuple(2 * s for s in lay.spatial)
    out = lay.out_shape(grown)
    assert len(out) == len(shape) and int(np.prod(out)) == int(np.prod(shape)) * 2 ** rank
    assert lay.view5(grown)[0] == planes and lay.out_view(grown) == (planes, cells * 2 ** rank,
                                                                     channels)
    # the view is a reshape of the data in memory order: channels_last keeps C innermost
    data = np.arange(int(np.prod(shape))).reshape(shape)
    flat = data.reshape(lay.view)
    if last:
        np.testing.assert_array_equal(flat[..., :], data.reshape(-1, cells, shape[-1]))
    else:
        np.testing.assert_array_equal(flat[..., 0], data.reshape(-1, cells))


def test_upsampling2d_function_is_the_layer():
    x = mp.tensor(np.random.default_rng(0).random((2, 3, 4, 5)).astype(np.float32))
    from minipool.ops.upsampling import upsampling2d
    for interpolation in ("nearest", "bilinear"):
        layer = nn.UpSampling2D((2, 3), interpolation=interpolation)
        np.testing.assert_array_equal(layer(x).numpy(),
                                      upsampling2d(x, (2, 3), None, interpolation).numpy())
    np.testing.assert_array_equal(upsampling2d(x, 2, "channels_first").numpy(),
                                  np.repeat(np.repeat(x.numpy(), 2, 2), 2, 3))
