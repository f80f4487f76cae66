"""The public API explains itself: hints, doctests, citations that resolve, one argument checker.

* every public callable (``minipool.__all__``, ``nn.functional``, ``nn``, ``nn.init``,
  ``nn.utils``, ``optim`` and its schedulers) has a docstring; every public function's starts
  with a summary line and holds a doctest (``--doctest-modules`` runs them); every public
  function, and every method of a public class, Tensor and Function, has type hints on its
  named parameters and its return;
* the core (Tensor, autograd, ``ops``) imports nothing from the layers above it;
* every "docs/semantics.md section N" in the code and tests names a section that exists, and
  nothing cites the old guide outside the repository;
* the shared checkers of ``minipool._validate`` and ``minipool.ops._layout.Layout`` behave as
  each op relied on before they were merged.
"""
import importlib
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


# The public API: what ``import minipool as mp`` users reach.  ``minipool.__all__``, every public
# name of ``nn.functional`` and ``nn``, ``nn.init``, ``nn.utils``, ``optim`` and its schedulers.
PUBLIC_NAMESPACES = {"minipool": mp, "minipool.nn.functional": F, "minipool.nn": nn,
                     "minipool.nn.init": nn.init, "minipool.nn.utils": nn.utils,
                     "minipool.optim": mp.optim, "minipool.optim.lr_scheduler": mp.optim.lr_scheduler}


def _public_names(module):
    names = getattr(module, "__all__", None)
    return names if names is not None else [n for n in dir(module) if not n.startswith("_")]


def _public_api():
    """(label, object) for every public callable minipool defines (NumPy's dtypes and
    other borrowed objects are not minipool's to document), each object once."""
    seen = set()
    for label, module in PUBLIC_NAMESPACES.items():
        for name in _public_names(module):
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not callable(obj) or id(obj) in seen:
                continue
            if not (getattr(obj, "__module__", None) or "").startswith("minipool"):
                continue
            seen.add(id(obj))
            yield f"{label}.{name}", obj


def _public_functions():
    return [(name, obj) for name, obj in _public_api() if not inspect.isclass(obj)]


def _public_classes():
    return [(name, obj) for name, obj in _public_api() if inspect.isclass(obj)]


def _unhinted(fn, skip_first=False):
    """Names of the parameters (and 'return') of ``fn`` that carry no annotation
    (``*args``/``**kwargs`` pass-throughs need none; ``__init__`` returns None by definition)."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1 if skip_first else 0:]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty
               and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if sig.return_annotation is inspect.Signature.empty and fn.__name__ != "__init__":
        missing.append("return")
    return missing


def test_the_public_api_walk_sees_every_area():
    # guards the walk itself: a broken filter would make the tests below pass on nothing
    names = {name for name, _ in _public_api()}
    for expected in ("minipool.tensor", "minipool.zeros", "minipool.nn.functional.max_pool2d",
                     "minipool.nn.functional.interpolate", "minipool.nn.Conv2d",
                     "minipool.nn.UpSampling2D", "minipool.nn.init.kaiming_uniform_",
                     "minipool.optim.Adam", "minipool.optim.lr_scheduler.CyclicLR"):
        assert expected in names
    assert len(names) > 300


def test_every_public_function_has_a_summary_line_and_a_doctest():
    bare = {}
    for name, fn in _public_functions():
        doc = inspect.getdoc(fn) or ""
        if not doc.strip() or not doc.splitlines()[0].strip():
            bare[name] = "no docstring"
        elif ">>>" not in doc:
            bare[name] = "no doctest"
    assert bare == {}


def test_every_public_class_has_a_docstring():
    assert [name for name, cls in _public_classes() if not cls.__doc__] == []


def test_every_public_function_is_hinted():
    missing = {name: m for name, fn in _public_functions() if (m := _unhinted(fn))}
    assert missing == {}


def _own_methods(cls):
    """The public methods (and properties, and ``__init__``) a class defines itself."""
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        if inspect.isfunction(fn):
            yield name, fn


def test_every_public_class_hints_its_methods():
    # layers (their __init__, forward, extra_repr, ...), optimizers, schedulers, Module's own API
    missing = {}
    for label, cls in _public_classes() + [("Tensor", Tensor), ("Function", Function)]:
        for name, fn in _own_methods(cls):
            first = next(iter(inspect.signature(fn).parameters), None)
            if m := _unhinted(fn, skip_first=first in ("self", "cls", "ctx")):
                missing[f"{label}.{name}"] = m
    assert missing == {}


def test_the_core_imports_nothing_above_it():
    # Tensor, autograd and the ops sit below nn, optim and the rest: a local import counts too
    # (a doctest's ``>>> import minipool.nn.functional as F`` is an example, not an import)
    upward = re.compile(r"^\s*(?:from|import)\s+minipool\.(?:nn|optim|models|data|train|cli|"
                        r"experiments|onnx|interop|summary)\b|^\s*from minipool import (?:nn|optim|"
                        r"models|data|interop)\b", re.M)
    core = [ROOT / "minipool" / "tensor.py", ROOT / "minipool" / "autograd.py",
            *(path for path in (ROOT / "minipool").glob("_*.py") if not path.name.startswith("__")),
            *(ROOT / "minipool" / "ops").rglob("*.py")]
    offenders = [f"{path.relative_to(ROOT)}: {m.group(0).strip()}" for path in core
                 for m in upward.finditer(path.read_text())]
    assert offenders == []


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


def test_exact_int_tuple_and_single_int_messages():
    # exact: conv-style arguments, as PyTorch's convolutions take them (no 1-tuple broadcast;
    # a sequence of another length is a ValueError)
    assert V.int_tuple(3, 2, "stride", "conv2d", 1, exact=True) == (3, 3)
    assert V.int_tuple([1, 2], 2, "stride", "conv2d", 1, exact=True) == (1, 2)
    for wrong_length in ((1, 2, 3), (2,)):
        with pytest.raises(ValueError, match=r"conv2d: stride must be an int or a tuple of 2 ints"):
            V.int_tuple(wrong_length, 2, "stride", "conv2d", 1, exact=True)
    with pytest.raises(TypeError, match=r"conv2d: stride must be an int or a tuple of 2 ints"):
        V.int_tuple((1, 2.0), 2, "stride", "conv2d", 1, exact=True)
    with pytest.raises(ValueError, match=r"conv2d: stride must be <= 7, got \(8, 1\)"):
        V.int_tuple((8, 1), 2, "stride", "conv2d", 1, 7, exact=True)
    assert V.int_tuple((2,), 2, "kernel_size", "max_pool2d", 1) == (2, 2)  # pooling broadcasts
    assert V.single_int(np.int32(4), "upscale_factor", "pixel_shuffle") == 4
    with pytest.raises(TypeError, match="pixel_shuffle: upscale_factor must be an int, got 2.0"):
        V.single_int(2.0, "upscale_factor", "pixel_shuffle")
    with pytest.raises(ValueError, match="pixel_shuffle: upscale_factor must be >= 1, got 0"):
        V.single_int(0, "upscale_factor", "pixel_shuffle")
    # layers count channels and features with it too: a non-int is a TypeError, as in PyTorch
    with pytest.raises(TypeError, match="Linear: in_features must be an int, got 2.5"):
        nn.Linear(2.5, 3)
    with pytest.raises(ValueError, match="Conv2d: groups must be >= 1, got 0"):
        nn.Conv2d(2, 2, 3, groups=0)
    with pytest.raises(ValueError, match="StepLR: step_size must be >= 1, got 0"):
        mp.optim.lr_scheduler.StepLR(mp.optim.SGD([nn.Parameter(mp.zeros(1))]), 0)


def test_one_integer_checker():
    # the retired checkers stay retired: every op, layer and scheduler uses _validate's
    source = "\n".join(path.read_text() for path in (ROOT / "minipool").rglob("*.py"))
    for retired in ("def positive_int", "def int_pair", "def _check_factor", "def as_generator"):
        assert retired not in source


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


# ----------------------------------------------------------------------------- docs cite what exists
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md",
        ROOT / "tests" / "README.md", ROOT / "benchmarks" / "RESULTS.md"]
ROOTS = {"minipool": mp, "mp": mp, "F": F, "nn": nn, "optim": mp.optim}
# PyTorch names the docs mention to say minipool lacks them (docs/differences.md)
ABSENT_ON_PURPOSE = {"nn.utils.weight_norm"}


def _resolve(dotted):
    """The object a dotted name such as ``mp.optim.SGD`` or ``minipool.ops._layout`` names,
    or None.  Submodules count even when the package does not import them itself."""
    head, *rest = dotted.split(".")
    obj, path = ROOTS[head], ROOTS[head].__name__
    for part in rest:
        path = f"{path}.{part}"
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(path)
        except ImportError:
            return None
    return obj


def _cited_names(text):
    # a name in quotes is a string the docs quote (``'minipool.FloatTensor'`` is what
    # Tensor.type() returns), not a reference
    for m in re.finditer(r"(?<![\w.'\"/])(minipool|mp|F|nn|optim)((?:\.[A-Za-z_]\w*)+)", text):
        yield m.group(1) + m.group(2).rstrip(".")


def test_docs_cite_names_that_exist():
    missing, cited = [], 0
    for doc in DOCS:
        for name in _cited_names(doc.read_text()):
            cited += 1
            if _resolve(name) is None and name not in ABSENT_ON_PURPOSE:
                missing.append(f"{doc.relative_to(ROOT)}: {name}")
    assert missing == []
    assert cited >= 40  # the README alone names dozens


def test_docs_cite_op_families_that_exist():
    # op tables write families as ``avg_pool1d/2d/3d`` or ``FractionalMaxPool2d/3d``: every member
    # must exist in nn.functional or nn (or at the top level)
    spaces = (F, nn, mp)
    missing, families = [], 0
    for doc in DOCS:
        for base, dims in re.findall(r"\b([A-Za-z_]\w*?)([123]d(?:/[123]d)+)\b", doc.read_text()):
            families += 1
            for dim in dims.split("/"):
                if not any(hasattr(space, base + dim) for space in spaces):
                    missing.append(f"{doc.relative_to(ROOT)}: {base}{dim}")
    assert missing == []
    assert families >= 5


def test_docs_cite_files_that_exist():
    missing, cited = [], 0
    for doc in DOCS:
        text = doc.read_text()
        for path in re.findall(r"(?<![\w/.])((?:minipool|tests|benchmarks|examples|docs)/[\w./-]*\w/?)",
                               text):
            cited += 1
            if not (ROOT / path).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
        for link in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", text):  # relative markdown links
            cited += 1
            if not (doc.parent / link).exists():
                missing.append(f"{doc.relative_to(ROOT)}: ({link})")
    assert missing == []
    assert cited >= 20


def test_docs_cite_environment_variables_the_code_reads():
    code = "\n".join(path.read_text(errors="replace") for folder in ("minipool", "tests")
                     for path in (ROOT / folder).rglob("*") if path.suffix in (".py", ".pyx"))
    code += (ROOT / "setup.py").read_text()
    missing = sorted({f"{doc.relative_to(ROOT)}: {var}" for doc in DOCS
                      for var in re.findall(r"\bMINIPOOL_[A-Z0-9_]+", doc.read_text())
                      if var not in code})
    assert missing == []


def test_readme_stays_short():
    # the README is for outsiders and stays at most ~20 KB; details go to docs/ and benchmarks/
    assert (ROOT / "README.md").stat().st_size <= 20 * 1024
