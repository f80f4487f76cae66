"""PyTorch habits at the top level: mp.load's torch.load options, Tensor.type, where(cond),
default dtype, mp.Generator, einsum/bmm, std_mean/var_mean, nn.Unflatten -- each against an
independent NumPy loop reference, PyTorch, and a float64 gradcheck where differentiable."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
from minipool.utils.data import DataLoader, TensorDataset, random_split

torch = pytest.importorskip("torch")


# --------------------------------------------------------------------------- mp.load options
@pytest.fixture
def saved(tmp_path):
    model = nn.Linear(3, 2, generator=0)
    path = tmp_path / "m.safetensors"
    mp.save({"model": model.state_dict(), "epoch": 4, "ema": [mp.ones(2)]}, path)
    return path, model


@pytest.mark.parametrize("map_location", [None, "cpu", "cpu:0", mp.device("cpu"),
                                          {"cuda:0": "cpu"}, {"cuda:1": mp.device("cpu")}])
@pytest.mark.parametrize("weights_only", [None, True, False])
def test_load_takes_torch_load_options_that_mean_cpu(saved, map_location, weights_only):
    path, model = saved
    back = mp.load(path, map_location=map_location, weights_only=weights_only)
    assert back["epoch"] == 4
    np.testing.assert_array_equal(back["model"]["weight"].numpy(), model.weight.numpy())


def test_load_takes_a_torch_device_and_a_mapping_function(saved):
    path, model = saved
    back = mp.load(path, map_location=torch.device("cpu"))
    np.testing.assert_array_equal(back["model"]["bias"].numpy(), model.bias.numpy())
    seen = []
    back = mp.load(path, map_location=lambda storage, loc: seen.append(loc) or storage)
    assert seen == ["cpu"] * 3  # every Tensor, nested ones too, with location "cpu"
    np.testing.assert_array_equal(back["model"]["weight"].numpy(), model.weight.numpy())
    doubled = mp.load(path, map_location=lambda t, loc: t * 2)
    np.testing.assert_array_equal(doubled["ema"][0].numpy(), [2.0, 2.0])


@pytest.mark.parametrize("kwargs, err, text", [
    (dict(map_location="cuda"), RuntimeError, "'cuda' is not available; use map_location='cpu'"),
    (dict(map_location="cuda:0"), RuntimeError, "'cuda:0' is not available"),
    (dict(map_location="mps"), RuntimeError, "'mps' is not available"),
    (dict(map_location={"cpu": "cuda:1"}), RuntimeError, "'cuda:1' is not available"),
    (dict(map_location=lambda t, loc: t.numpy()), TypeError, "map_location returned a ndarray"),
    (dict(weights_only="yes"), TypeError, "weights_only must be True, False or None"),
    (dict(mmap=True), ValueError, "mmap=True is not supported"),
])
def test_load_refuses_other_devices_by_name(saved, kwargs, err, text):
    with pytest.raises(err, match=text):
        mp.load(saved[0], **kwargs)


def test_load_of_a_torch_device_cuda_is_refused(saved):
    with pytest.raises(RuntimeError, match="'cuda' is not available"):
        mp.load(saved[0], map_location=torch.device("cuda"))


# --------------------------------------------------------------------------- Tensor.type
@pytest.mark.parametrize("name", ["float32", "float64", "float16", "int64", "int32", "int16",
                                  "int8", "uint8", "bool"])
def test_type_names_are_torchs_with_minipool_prefix(name):
    t = torch.zeros(2, dtype=getattr(torch, name))
    x = mp.zeros(2, dtype=getattr(mp, name))
    assert x.type() == t.type().replace("torch.", "minipool.")


@pytest.mark.parametrize("target", ["float64", "int64", "int32", "uint8", "bool", "float32"])
def test_type_casts_as_torch(target):
    values = np.array([-1.7, 0.0, 0.5, 2.5, 300.0], np.float32)
    x, t = mp.tensor(values), torch.tensor(values)
    by_dtype = x.type(getattr(mp, target))
    by_name = x.type(t.type(getattr(torch, target)).type())  # 'torch.LongTensor' etc.
    expected = t.type(getattr(torch, target)).numpy()
    for got in (by_dtype, by_name):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got.numpy(), expected)
    assert (x.type(mp.float32) is x) == (t.type(torch.float32) is t) is True


def test_type_keeps_the_gradient_of_float_casts():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    (x.type(mp.float64) * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


@pytest.mark.parametrize("bad", ["torch.FooTensor", "cuda.FloatTensor", "torch.cuda.FloatTensor"])
def test_type_refuses_unknown_names(bad):
    with pytest.raises(ValueError, match="unknown tensor type"):
        mp.zeros(2).type(bad)


# --------------------------------------------------------------------------- where(cond)
def _nonzero_loops(a):
    """Indices of the non-zero entries, one list per dim, by walking the array in order."""
    a = np.atleast_1d(a)
    hits = [idx for idx in itertools.product(*map(range, a.shape)) if a[idx] != 0]
    return [[h[d] for h in hits] for d in range(a.ndim)]


@pytest.mark.parametrize("values", [
    [0, 1, 1], [[0.0, np.nan], [-np.inf, 0.0]], [[True, False], [False, True]], 3.0, 0,
    np.zeros((2, 0, 3))])
def test_where_with_one_argument_is_nonzero_as_tuple(values):
    a = np.array(values)
    got = mp.where(mp.tensor(a))
    want = torch.where(torch.tensor(a))
    assert isinstance(got, tuple) and len(got) == len(want) == len(_nonzero_loops(a))
    for g, w, ref in zip(got, want, _nonzero_loops(a)):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g.numpy(), w.numpy())
        assert g.tolist() == ref


def test_where_with_two_arguments_is_refused():
    with pytest.raises(TypeError, match="give both a and b"):
        mp.where(mp.tensor([True]), mp.tensor([1.0]))


# --------------------------------------------------------------------------- default dtype
@pytest.fixture
def float64_default():
    mp.set_default_dtype(mp.float64)
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        mp.set_default_dtype(mp.float32)
        torch.set_default_dtype(torch.float32)


FACTORIES = [
    ("tensor of floats", lambda m: m.tensor([1.5, 2.0])),
    ("tensor of ints", lambda m: m.tensor([1, 2])),
    ("zeros", lambda m: m.zeros(2)), ("ones", lambda m: m.ones(2, 1)),
    ("full", lambda m: m.full((2,), 1.5)), ("empty", lambda m: m.empty(2)),
    ("randn", lambda m: m.randn(3)), ("rand", lambda m: m.rand(3)),
    ("arange float", lambda m: m.arange(0.0, 2.0)), ("arange int", lambda m: m.arange(3)),
    ("eye", lambda m: m.eye(2)), ("linspace", lambda m: m.linspace(0, 1, 3)),
    ("sin of ints", lambda m: m.sin(m.tensor([4, 9]))),
    ("Linear", lambda m: m.nn.Linear(2, 3).weight), ("Conv2d", lambda m: m.nn.Conv2d(1, 2, 3).bias),
    ("ConvTranspose2d", lambda m: m.nn.ConvTranspose2d(1, 2, 3).weight),
    ("Conv1d", lambda m: m.nn.Conv1d(1, 2, 3).weight),
    ("BatchNorm2d", lambda m: m.nn.BatchNorm2d(2).running_mean),
    ("LayerNorm", lambda m: m.nn.LayerNorm(2).weight), ("GroupNorm", lambda m: m.nn.GroupNorm(1, 2).bias),
    ("Embedding", lambda m: m.nn.Embedding(3, 2).weight),
]


def _dtype_name(x):
    return str(x.dtype).replace("torch.", "")


@pytest.mark.parametrize("what, make", FACTORIES, ids=[f[0] for f in FACTORIES])
def test_default_dtype_float32_as_torch(what, make):
    assert mp.get_default_dtype() == mp.float32
    assert _dtype_name(make(mp)) == _dtype_name(make(torch))


@pytest.mark.parametrize("what, make", FACTORIES, ids=[f[0] for f in FACTORIES])
def test_default_dtype_float64_reaches_every_factory_and_layer(float64_default, what, make):
    assert mp.get_default_dtype() == mp.float64
    assert _dtype_name(make(mp)) == _dtype_name(make(torch))


def test_default_dtype_float64_trains_and_gradchecks(float64_default):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, generator=0), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2, generator=1))
    x = mp.randn(1, 1, 4, 4, generator=2)
    assert net(x).dtype == np.float64
    assert mp.gradcheck(lambda v: net(v), [mp.randn(1, 1, 4, 4, generator=3, requires_grad=True)])
    assert repr(mp.tensor([1.5])) == "tensor([1.5])"  # the default dtype is not spelled out


@pytest.mark.parametrize("bad", [mp.float16, mp.int64, "int32", None, 3])
def test_set_default_dtype_refuses_other_dtypes(bad):
    with pytest.raises(TypeError, match="dtype must be mp.float32 or mp.float64"):
        mp.set_default_dtype(bad)
    assert mp.get_default_dtype() == mp.float32


# --------------------------------------------------------------------------- mp.Generator
def test_generator_interface_as_torch():
    g, t = mp.Generator(), torch.Generator()
    assert g.initial_seed() == t.initial_seed()  # PyTorch's fixed default seed
    assert g.manual_seed(42) is g and t.manual_seed(42) is t
    assert g.initial_seed() == 42 and g.device == "cpu"
    seed = g.seed()
    assert isinstance(seed, int) and g.initial_seed() == seed
    assert mp.Generator().seed() != mp.Generator().seed()  # from the OS, not the clock's second


def test_generator_draws_are_reproducible_and_state_round_trips():
    a = mp.randn(5, generator=mp.Generator().manual_seed(3)).numpy()
    b = mp.randn(5, generator=mp.Generator().manual_seed(3)).numpy()
    c = mp.randn(5, generator=mp.Generator().manual_seed(4)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # two unseeded Generators agree, as two torch.Generator() do
    np.testing.assert_array_equal(mp.rand(4, generator=mp.Generator()).numpy(),
                                  mp.rand(4, generator=mp.Generator()).numpy())
    g = mp.Generator().manual_seed(9)
    mp.rand(3, generator=g)
    state = g.get_state()
    assert state.dtype == np.uint8 and state.ndim == 1
    first = mp.rand(3, generator=g).numpy()
    mp.rand(7, generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(mp.rand(3, generator=g).numpy(), first)
    g2 = mp.Generator().set_state(state)  # another generator takes it too
    np.testing.assert_array_equal(mp.rand(3, generator=g2).numpy(), first)


def test_a_layer_holding_a_generator_follows_its_manual_seed():
    g = mp.Generator().manual_seed(1)
    drop = nn.Dropout(0.5, generator=g)
    x = mp.ones(64)
    g.manual_seed(5)
    a = drop(x).numpy()
    g.manual_seed(5)
    np.testing.assert_array_equal(drop(x).numpy(), a)


def _draws(generator):
    """One draw from every op that takes generator=, as plain lists."""
    x = mp.ones(2, 1, 4, 4)
    ds = TensorDataset(mp.arange(10))
    loader = DataLoader(ds, batch_size=10, shuffle=True, generator=generator)
    w = mp.zeros(3, 3)
    nn.init.normal_(w, generator=generator)
    return [
        mp.randn(3, generator=generator).tolist(), mp.rand(3, generator=generator).tolist(),
        mp.randint(0, 100, (3,), generator=generator).tolist(),
        mp.randperm(6, generator=generator).tolist(),
        mp.nn.functional.dropout(mp.ones(8), 0.5, generator=generator).tolist(),
        [sorted(p.indices.tolist() if hasattr(p.indices, "tolist") else list(p.indices))
         for p in random_split(ds, [0.8, 0.2], generator=generator)],
        next(iter(loader))[0].tolist(), w.tolist(),
        nn.Linear(2, 2, generator=generator).weight.tolist(),
        mp.nn.functional.fractional_max_pool2d(x, 2, output_size=(2, 2), generator=generator).tolist(),
    ]


def test_every_generator_argument_takes_an_mp_generator():
    first = _draws(mp.Generator().manual_seed(42))
    assert _draws(mp.Generator().manual_seed(42)) == first
    assert _draws(mp.Generator().manual_seed(43)) != first


def test_random_split_habit_from_pytorch_tutorials():
    ds = TensorDataset(mp.arange(100))
    train, val = random_split(ds, [0.8, 0.2], generator=mp.Generator().manual_seed(42))
    assert (len(train), len(val)) == (80, 20)
    assert sorted(list(train.indices) + list(val.indices)) == list(range(100))


@pytest.mark.parametrize("call, err, text", [
    (lambda: mp.Generator("cuda"), RuntimeError, "device 'cuda' is not available"),
    (lambda: mp.Generator().manual_seed(-1), ValueError, "seed must be >= 0"),
    (lambda: mp.Generator().manual_seed(1.5), TypeError, "seed must be an int"),
    (lambda: mp.Generator().set_state(mp.zeros(3)), ValueError, "uint8 Tensor from mp.Generator.get_state"),
    (lambda: mp.Generator().set_state(mp.tensor(np.frombuffer(b"{}", np.uint8))), ValueError, "get_state"),
    (lambda: mp.randn(2, generator=torch.Generator()), TypeError, "an mp.Generator"),
])
def test_generator_errors(call, err, text):
    with pytest.raises(err, match=text):
        call()


# --------------------------------------------------------------------------- einsum, bmm
def _einsum_loops(subs, out, arrays):
    """Sum over every assignment of the letters: the definition of einsum, written as loops."""
    sizes = {}
    for sub, a in zip(subs, arrays):
        for c, n in zip(sub, a.shape):
            sizes[c] = max(sizes.get(c, 1), n)
    letters = sorted(sizes)
    result = np.zeros([sizes[c] for c in out])
    for values in itertools.product(*(range(sizes[c]) for c in letters)):
        at = dict(zip(letters, values))
        term = 1.0
        for sub, a in zip(subs, arrays):
            term *= a[tuple(at[c] if a.shape[k] > 1 else 0 for k, c in enumerate(sub))]
        result[tuple(at[c] for c in out)] += term
    return result


EINSUMS = [("ij,jk->ik", [(2, 3), (3, 4)]), ("ii", [(3, 3)]), ("ii->i", [(3, 3)]),
           ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]), ("ij->", [(2, 3)]), ("i,j->ij", [(2,), (3,)]),
           ("...ij,...jk", [(2, 3, 4), (4, 2)]), ("ij,jk", [(2, 3), (3, 4)]), ("ijk->kj", [(2, 3, 4)]),
           ("ij,ij->i", [(2, 3), (1, 3)]), ("i,i,i->", [(4,), (4,), (4,)]), ("ij->j", [(2, 3)]),
           ("nchw,oc->nohw", [(2, 3, 2, 2), (4, 3)]), ("b...,b...->b", [(2, 3, 2), (2, 3, 2)]),
           ("iij->j", [(2, 2, 3)]), ("i", [(3,)]), (",i->i", [(), (3,)])]


@pytest.mark.parametrize("eq, shapes", EINSUMS, ids=[e for e, _ in EINSUMS])
def test_einsum_matches_loops_torch_and_gradcheck(eq, shapes):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    xs = [mp.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = mp.einsum(eq, *xs), torch.einsum(eq, *ts)
    assert y.shape == tuple(ty.shape) and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    from minipool.ops.linalg import _explicit_einsum
    subs, out = _explicit_einsum(eq, shapes)
    np.testing.assert_allclose(y.numpy(), _einsum_loops(subs, out, arrays), rtol=1e-12, atol=1e-12)
    w = rng.standard_normal(ty.shape)
    (y * mp.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert mp.gradcheck(lambda *v: mp.einsum(eq, *v), [mp.tensor(a, requires_grad=True) for a in arrays])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_einsum_random_equations_match_loops_and_torch(data):
    sizes = {c: data.draw(st.integers(1, 3)) for c in "abcd"}
    subs = [data.draw(st.text("abcd", min_size=0, max_size=3)) for _ in range(data.draw(st.integers(1, 3)))]
    used = sorted(set("".join(subs)))
    out = "".join(data.draw(st.permutations(used))[:data.draw(st.integers(0, len(used)))])
    eq = ",".join(subs) + "->" + out
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal([sizes[c] for c in s]) for s in subs]
    y = mp.einsum(eq, [mp.tensor(a) for a in arrays])  # the list form too
    np.testing.assert_allclose(y.numpy(), _einsum_loops(subs, out, arrays), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.numpy(), torch.einsum(eq, *map(torch.tensor, arrays)).numpy(),
                               rtol=1e-10, atol=1e-10)


def test_einsum_keeps_float32_and_propagates_nan_inf():
    a = mp.tensor([[1.0, np.nan], [np.inf, 2.0]])
    b = mp.ones(2, 2)
    got = mp.einsum("ij,jk->ik", a, b)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.numpy(), torch.einsum("ij,jk->ik", torch.tensor(a.numpy()),
                                                            torch.ones(2, 2)).numpy())


@pytest.mark.parametrize("call, err, text", [
    (lambda: mp.einsum("ij,jk->ik", mp.ones(2, 3)), ValueError, "has 2 operand.*1 given"),
    (lambda: mp.einsum("ij->ik", mp.ones(2, 3)), ValueError, "output subscripts"),
    (lambda: mp.einsum("ij->ii", mp.ones(2, 2)), ValueError, "output subscripts"),
    (lambda: mp.einsum("ijk", mp.ones(2, 3)), ValueError, "do not match an operand"),
    (lambda: mp.einsum("ij,jk", mp.ones(2, 3), mp.ones(4, 2)), ValueError, "subscript 'j' has size"),
    (lambda: mp.einsum("i1", mp.ones(2, 3)), ValueError, "invalid subscript"),
    (lambda: mp.einsum("i,i", mp.ones(2), mp.ones(2, dtype=mp.float64)), TypeError, "same dtype"),
    (lambda: mp.einsum(mp.ones(2), [0]), TypeError, "equation must be a str"),
])
def test_einsum_errors(call, err, text):
    with pytest.raises(err, match=text):
        call()


def test_bmm_matches_loops_torch_and_gradcheck():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 4, 5))
    loops = np.zeros((3, 2, 5))
    for n, i, j, k in itertools.product(range(3), range(2), range(5), range(4)):
        loops[n, i, j] += a[n, i, k] * b[n, k, j]
    got = mp.bmm(mp.tensor(a), mp.tensor(b))
    np.testing.assert_allclose(got.numpy(), loops, rtol=1e-12)
    np.testing.assert_allclose(got.numpy(), torch.bmm(torch.tensor(a), torch.tensor(b)).numpy(), rtol=1e-12)
    assert mp.bmm(mp.ones(1, 2, 3), mp.ones(1, 3, 1)).dtype == np.float32
    assert mp.gradcheck(mp.bmm, [mp.tensor(a, requires_grad=True), mp.tensor(b, requires_grad=True)])


@pytest.mark.parametrize("shapes, text", [
    (((2, 3), (3, 4)), "must be 3-d"), (((2, 2, 3), (3, 3, 4)), "same batch size"),
    (((2, 2, 3), (2, 4, 4)), "do not line up"), (((2, 2, 3), (1, 3, 4)), "same batch size")])
def test_bmm_refuses_what_torch_refuses(shapes, text):
    with pytest.raises(RuntimeError):
        torch.bmm(torch.ones(*shapes[0]), torch.ones(*shapes[1]))
    with pytest.raises(ValueError, match=text):
        mp.bmm(mp.ones(*shapes[0]), mp.ones(*shapes[1]))


# --------------------------------------------------------------------------- std_mean, var_mean
@pytest.mark.parametrize("kwargs", [{}, dict(dim=1), dict(dim=(0, 2), keepdim=True),
                                    dict(dim=1, correction=0), dict(dim=-1, unbiased=False),
                                    dict(dim=0, correction=2)])
@pytest.mark.parametrize("name", ["std_mean", "var_mean"])
def test_std_mean_and_var_mean_match_loops_and_torch(name, kwargs):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 4, 5))
    got = getattr(mp, name)(mp.tensor(a), **kwargs)
    want = getattr(torch, name)(torch.tensor(a), **kwargs)
    assert isinstance(got, tuple) and len(got) == 2
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-12)
    # the definition, with loops, for the whole-tensor case
    if not kwargs:
        flat = list(a.ravel())
        m = sum(flat) / len(flat)
        v = sum((x - m) ** 2 for x in flat) / (len(flat) - 1)
        spread = v ** 0.5 if name == "std_mean" else v
        np.testing.assert_allclose([got[0].item(), got[1].item()], [spread, m], rtol=1e-12)
    assert mp.gradcheck(lambda v: getattr(mp, name)(v, **kwargs)[0] + getattr(mp, name)(v, **kwargs)[1].sum(),
                        [mp.tensor(a, requires_grad=True)])


# --------------------------------------------------------------------------- nn.Unflatten
@pytest.mark.parametrize("dim, size, shape", [(1, (2, 3), (4, 6)), (1, (2, -1), (4, 6)),
                                              (-1, (3, 1, 2), (2, 6)), (0, (2, 2), (4, 3)),
                                              (1, [16, 7, 7], (2, 784)), (1, (5,), (2, 5)), (1, (5, 1), (2, 5))])
def test_unflatten_matches_torch_and_flatten_inverts_it(dim, size, shape):
    rng = np.random.default_rng(4)
    a = rng.standard_normal(shape)
    x = mp.tensor(a, requires_grad=True)
    layer, twin = nn.Unflatten(dim, size), torch.nn.Unflatten(dim, size)
    y = layer(x)
    np.testing.assert_array_equal(y.numpy(), twin(torch.tensor(a)).numpy())
    assert repr(layer) == repr(twin)
    d = dim % len(shape)
    np.testing.assert_array_equal(nn.Flatten(d, d + len(size) - 1)(y).numpy(), a)
    assert mp.gradcheck(layer, [mp.tensor(a, requires_grad=True)])


@pytest.mark.parametrize("make, err, text", [
    (lambda: nn.Unflatten(1, 6), TypeError, "unflattened_size must be a tuple of ints"),
    (lambda: nn.Unflatten(1, (2.0, 3)), TypeError, "tuple of ints"),
    (lambda: nn.Unflatten("1", (2, 3)), TypeError, "dim must be an int"),
    (lambda: nn.Unflatten(1, (-1, -1)), ValueError, "at most one -1"),
    (lambda: nn.Unflatten(1, ()), ValueError, "non-empty"),
    (lambda: nn.Unflatten(1, (4, 2))(mp.zeros(2, 6)), ValueError, "do not multiply up"),
    (lambda: nn.Unflatten(1, (4, -1))(mp.zeros(2, 6)), ValueError, "do not multiply up"),
    (lambda: nn.Unflatten(2, (2, 3))(mp.zeros(2, 6)), IndexError, "out of range"),
])
def test_unflatten_errors(make, err, text):
    with pytest.raises(err, match=text):
        make()


@pytest.mark.parametrize("name", ["weight_norm", "spectral_norm", "parametrize"])
def test_weight_reparametrisations_are_refused_by_name(name):
    with pytest.raises(AttributeError, match="no weight re-parametrisation.*BatchNorm2d"):
        getattr(nn.utils, name)


# --------------------------------------------------------------------------- more torch.* names
def _matmul_loops(a, b):
    """(n, k) @ (k, m) by three loops (1-d operands as a row / a column, squeezed back)."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    out = np.zeros((a2.shape[0], b2.shape[1]))
    for i, j, k in itertools.product(range(a2.shape[0]), range(b2.shape[1]), range(a2.shape[1])):
        out[i, j] += a2[i, k] * b2[k, j]
    return out.reshape(([a.shape[0]] if a.ndim == 2 else []) + ([b.shape[1]] if b.ndim == 2 else []))


@pytest.mark.parametrize("name, shapes", [("mm", [(2, 3), (3, 4)]), ("mv", [(2, 3), (3,)]),
                                          ("dot", [(4,), (4,)]), ("outer", [(3,), (2,)])])
def test_mm_mv_dot_outer_match_loops_torch_and_gradcheck(name, shapes):
    rng = np.random.default_rng(6)
    a, b = (rng.standard_normal(s) for s in shapes)
    got = getattr(mp, name)(mp.tensor(a), mp.tensor(b))
    want = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
    ref = np.multiply.outer(a, b) if name == "outer" else _matmul_loops(a, b)
    assert got.shape == want.shape and got.dtype == np.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)
    assert mp.gradcheck(getattr(mp, name), [mp.tensor(a, requires_grad=True), mp.tensor(b, requires_grad=True)])
    assert getattr(mp, name)(mp.tensor(a.astype(np.float32)), mp.tensor(b.astype(np.float32))).dtype == np.float32


@pytest.mark.parametrize("name, shapes", [("mm", [(2, 3), (3,)]), ("mm", [(2, 3), (4, 2)]),
                                          ("mv", [(2, 3), (2, 3)]), ("mv", [(2, 3), (2,)]),
                                          ("dot", [(3,), (4,)]), ("dot", [(2, 2), (2, 2)]),
                                          ("outer", [(2, 2), (2,)])])
def test_mm_mv_dot_outer_refuse_what_torch_refuses(name, shapes):
    with pytest.raises(RuntimeError):
        getattr(torch, name)(*(torch.ones(s) for s in shapes))
    with pytest.raises(ValueError, match=f"^{name}|matmul"):
        getattr(mp, name)(*(mp.ones(*s) for s in shapes))


@pytest.mark.parametrize("name", ["randn_like", "rand_like", "full_like", "empty_like"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_like_factories_take_shape_and_dtype_from_input(name, dtype):
    extra = (2.5,) if name == "full_like" else ()
    x, t = mp.zeros(2, 3, dtype=getattr(mp, dtype)), torch.zeros(2, 3, dtype=getattr(torch, dtype))
    got, want = getattr(mp, name)(x, *extra), getattr(torch, name)(t, *extra)
    assert got.shape == tuple(want.shape) and str(got.dtype) == str(want.dtype).replace("torch.", "")
    as64 = getattr(mp, name)(x, *extra, dtype=mp.float64, requires_grad=True)
    assert as64.dtype == np.float64 and as64.requires_grad
    if name == "full_like":
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert mp.full_like(mp.zeros(2, dtype=mp.int64), 2.7).tolist() == \
            torch.full_like(torch.zeros(2, dtype=torch.int64), 2.7).tolist()
    if name == "rand_like":
        assert 0 <= got.numpy().min() and got.numpy().max() < 1
    if name in ("randn_like", "rand_like"):
        mp.manual_seed(3)
        a = getattr(mp, name)(x).numpy()
        mp.manual_seed(3)
        np.testing.assert_array_equal(getattr(mp, name)(x).numpy(), a)


@pytest.mark.parametrize("call, err, text", [
    (lambda: mp.randn_like(mp.zeros(2, dtype=mp.int64)), TypeError, "must be a float tensor"),
    (lambda: mp.rand_like(np.zeros(2)), TypeError, "input must be a Tensor"),
    (lambda: mp.numel([1, 2]), TypeError, "numel: input must be a Tensor"),
    (lambda: mp.is_floating_point(1.0), TypeError, "input must be a Tensor"),
])
def test_like_and_predicates_errors(call, err, text):
    with pytest.raises(err, match=text):
        call()


def test_predicates_numel_finfo_iinfo_and_views_as_torch():
    for dtype in ("float32", "float64", "int64", "bool"):
        x, t = mp.zeros(2, 3, dtype=getattr(mp, dtype)), torch.zeros(2, 3, dtype=getattr(torch, dtype))
        assert mp.is_floating_point(x) == x.is_floating_point() == torch.is_floating_point(t)
        assert mp.numel(x) == torch.numel(t) == 6
    assert mp.is_tensor(nn.Parameter(mp.zeros(1))) and not mp.is_tensor(np.zeros(1))
    for dtype in ("float32", "float64"):
        ours, theirs = mp.finfo(getattr(mp, dtype)), torch.finfo(getattr(torch, dtype))
        for field in ("eps", "max", "min", "tiny", "bits"):  # (resolution: NumPy rounds it to the dtype)
            assert float(getattr(ours, field)) == getattr(theirs, field), (dtype, field)
    assert mp.finfo().eps == torch.finfo().eps  # the default dtype
    assert (mp.iinfo(mp.int64).max, mp.iinfo(mp.uint8).min) == (torch.iinfo(torch.int64).max, 0)
    a = mp.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    b = a.expand_as(mp.zeros(4, 3))
    assert b.shape == (4, 3)
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[4.0, 4.0, 4.0]])
    assert mp.arange(6).view_as(mp.zeros(2, 3)).tolist() == torch.arange(6).view_as(torch.zeros(2, 3)).tolist()


@pytest.mark.parametrize("name", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparison_functions_match_torch(name):
    a = np.array([1.0, np.nan, -np.inf, 2.0, 3.0])
    b = np.array([1.0, np.nan, -np.inf, 3.0, 2.0])
    got = getattr(mp, name)(mp.tensor(a), mp.tensor(b))
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got.numpy(), getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy())
    np.testing.assert_array_equal(getattr(mp, name)(mp.tensor(a), 2.0).numpy(),
                                  getattr(torch, name)(torch.tensor(a), 2.0).numpy())


# --------------------------------------------------------------------------- flip, roll, mT, fills
def _flip_loops(a, axes):
    out = np.empty_like(a)
    for idx in itertools.product(*map(range, a.shape)):
        src = tuple(a.shape[d] - 1 - i if d in axes else i for d, i in enumerate(idx))
        out[idx] = a[src]
    return out


def _roll_loops(a, shifts, axes):
    out = np.empty_like(a)
    for idx in itertools.product(*map(range, a.shape)):
        dst = list(idx)
        for s, d in zip(shifts, axes):
            dst[d] = (dst[d] + s) % a.shape[d]
        out[tuple(dst)] = a[idx]
    return out


@pytest.mark.parametrize("dims", [(0,), (1,), (-1,), (0, 2), (2, 1, 0), ()])
def test_flip_matches_loops_torch_and_gradcheck(dims):
    a = np.random.default_rng(7).standard_normal((2, 3, 4))
    got = mp.flip(mp.tensor(a), list(dims))
    np.testing.assert_array_equal(got.numpy(), torch.flip(torch.tensor(a), list(dims)).numpy())
    np.testing.assert_array_equal(got.numpy(), _flip_loops(a, {d % 3 for d in dims}))
    if dims:
        np.testing.assert_array_equal(mp.tensor(a).flip(*dims).numpy(), torch.tensor(a).flip(*dims).numpy())
    assert mp.gradcheck(lambda v: mp.flip(v, list(dims)), [mp.tensor(a, requires_grad=True)])
    assert got.numpy().base is None or not np.shares_memory(got.numpy(), a)


@pytest.mark.parametrize("shifts, dims", [(1, None), (-3, None), (7, None), (1, 0), (2, -1),
                                          ((1, -2), (0, 2)), ((5, 5), (1, 1))])
def test_roll_matches_loops_torch_and_gradcheck(shifts, dims):
    a = np.random.default_rng(8).standard_normal((2, 3, 4))
    got = mp.roll(mp.tensor(a), shifts, dims)
    np.testing.assert_array_equal(got.numpy(), torch.roll(torch.tensor(a), shifts, dims).numpy())
    if dims is None:
        ref = _roll_loops(a.reshape(-1), [shifts], [0]).reshape(a.shape)
    else:
        s = shifts if isinstance(shifts, tuple) else (shifts,)
        d = dims if isinstance(dims, tuple) else (dims,)
        ref = _roll_loops(a, s, [x % 3 for x in d])
    np.testing.assert_array_equal(got.numpy(), ref)
    np.testing.assert_array_equal(mp.tensor(a).roll(shifts, dims).numpy(), got.numpy())
    assert mp.gradcheck(lambda v: mp.roll(v, shifts, dims), [mp.tensor(a, requires_grad=True)])


@pytest.mark.parametrize("call, err, text", [
    (lambda: mp.flip(mp.zeros(2, 2), [0, 0]), ValueError, "duplicates"),
    (lambda: mp.flip(mp.zeros(2, 2), [2]), (ValueError, IndexError), "out of range|dim"),
    (lambda: mp.roll(mp.zeros(2, 2), (1, 2)), ValueError, "without dims"),
    (lambda: mp.roll(mp.zeros(2, 2), (1, 2), 0), ValueError, "same length"),
    (lambda: mp.roll(mp.zeros(2, 2), 1.5, 0), TypeError, "shifts must be an int"),
    (lambda: mp.zeros(3).mT, ValueError, "at least 2 dims"),
])
def test_flip_roll_mT_errors(call, err, text):
    with pytest.raises(err, match=text):
        call()


def test_mT_as_torch():
    a = np.random.default_rng(9).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(mp.tensor(a).mT.numpy(), torch.tensor(a).mT.numpy())
    assert mp.gradcheck(lambda v: v.mT, [mp.tensor(a, requires_grad=True)])


def test_normal_and_uniform_fill_in_place_as_torch():
    w = mp.zeros(2000, dtype=mp.float64)
    assert w.normal_(0.5, 2.0) is w
    assert abs(w.numpy().mean() - 0.5) < 0.2 and abs(w.numpy().std() - 2.0) < 0.2
    assert w.uniform_(-3, -1) is w and -3 <= w.numpy().min() and w.numpy().max() < -1
    w.uniform_(**{"from": 2, "to": 4})
    assert 2 <= w.numpy().min() and w.numpy().max() < 4
    w.uniform_()
    assert 0 <= w.numpy().min() and w.numpy().max() < 1
    a = mp.zeros(5).normal_(generator=mp.Generator().manual_seed(1)).numpy()
    np.testing.assert_array_equal(mp.zeros(5).normal_(generator=mp.Generator().manual_seed(1)).numpy(), a)
    layer, twin = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    for fill in ("normal_", "uniform_"):
        with pytest.raises(RuntimeError):
            getattr(twin.weight, fill)()
        with pytest.raises(RuntimeError, match="wrap it in `with mp.no_grad"):
            getattr(layer.weight, fill)()
        with mp.no_grad():
            getattr(layer.weight, fill)()
    with pytest.raises(TypeError, match="takes \\(from=0, to=1\\)"):
        mp.zeros(2).uniform_(0, 1, 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        mp.zeros(2, dtype=mp.int64).normal_()


# --------------------------------------------------------------------------- padding layers
@pytest.mark.parametrize("name, args", [("ZeroPad2d", (1,)), ("ZeroPad2d", ((1, 0, 2, -1),)),
                                        ("ConstantPad2d", ((1, 2, 0, 1), 3.5)), ("ConstantPad2d", (2, -1.0)),
                                        ("ReflectionPad2d", (2,)), ("ReflectionPad2d", ((1, 0, 2, 1),)),
                                        ("ReplicationPad2d", ((3, 0, 1, 2),)), ("ReplicationPad2d", (1,))])
def test_padding_layers_match_torch_and_gradcheck(name, args):
    a = np.random.default_rng(10).standard_normal((2, 3, 4, 5))
    layer, twin = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(layer) == repr(twin)
    np.testing.assert_array_equal(layer(mp.tensor(a)).numpy(), twin(torch.tensor(a)).numpy())
    np.testing.assert_array_equal(layer(mp.tensor(a[0])).numpy(), twin(torch.tensor(a[0])).numpy())  # 3-d
    assert mp.gradcheck(layer, [mp.tensor(a[:1, :2], requires_grad=True)])


def test_padding_layers_refuse_bad_padding():
    for bad in ((1, 2), 1.5, (1, 2, 3, "4"), True):
        with pytest.raises(TypeError, match="padding must be an int or 4 ints"):
            nn.ZeroPad2d(bad)
    with pytest.raises(ValueError, match="reflect"):
        nn.ReflectionPad2d(4)(mp.zeros(1, 1, 3, 3))


# --------------------------------------------------------------------------- names that are not there
@pytest.mark.parametrize("name, words", [("FloatTensor", "mp.tensor\\(data, dtype=mp.float32\\)"),
                                         ("LongTensor", "dtype=mp.int64"), ("linalg", "no linear-algebra"),
                                         ("set_printoptions", "numpy.set_printoptions")])
def test_missing_torch_names_say_the_minipool_way(name, words):
    with pytest.raises(AttributeError, match=words):
        getattr(mp, name)


@pytest.mark.parametrize("value", [7, True, 7.5, np.int64(3), np.float64(2.5)])
def test_full_infers_its_dtype_from_the_value_as_torch(value):
    ours, theirs = mp.full((2,), value), torch.full((2,), value)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_tensor_softmax_needs_dim_as_torch(name):
    for lib in (mp, torch):
        with pytest.raises(TypeError, match="dim"):
            getattr(lib.ones(2, 3), name)()
    np.testing.assert_allclose(getattr(mp.ones(2, 3), name)(1).numpy(),
                               getattr(torch.ones(2, 3), name)(1).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "sin", "cos", "rsqrt"])
def test_float_maths_of_an_int_tensor_give_the_default_float_dtype_as_torch(name):
    """sigmoid of an int tensor used to stay int64 (all zeros); exp/log/sqrt/tanh gave float64."""
    ours, theirs = getattr(mp, name)(mp.tensor([1, 2, 4])), getattr(torch, name)(torch.tensor([1, 2, 4]))
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    assert getattr(mp.tensor([1, 2, 4]), name)().dtype == ours.dtype


@pytest.mark.parametrize("dim, size, shape", [(1, (2, -1), (4, 6)), (-1, (3, 1, 2), (2, 6)),
                                              (0, (2, 2), (4, 3))])
def test_unflatten_function_and_method_match_torch(dim, size, shape):
    a = np.random.default_rng(5).standard_normal(shape)
    expected = torch.unflatten(torch.tensor(a), dim, size).numpy()
    np.testing.assert_array_equal(mp.unflatten(mp.tensor(a), dim, size).numpy(), expected)
    np.testing.assert_array_equal(mp.tensor(a).unflatten(dim, size).numpy(), expected)
    assert mp.gradcheck(lambda t: t.unflatten(dim, size), [mp.tensor(a, requires_grad=True)])
    with pytest.raises(ValueError, match="do not multiply up"):
        mp.unflatten(mp.tensor(a), dim, (7, 5))
