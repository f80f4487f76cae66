"""scatter / scatter_add / scatter_reduce, index_select / index_add / index_copy / index_fill,
masked_select, take_along_dim, repeat_interleave, unbind, tril/triu, count_nonzero:
loop references, PyTorch parity under hypothesis (NaN/inf, duplicate indices, int/bool),
float64 finite differences, in-place forms, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minipool as mp
from tests.core.parity_helpers import assert_parity

torch = pytest.importorskip("torch")

values = st.sampled_from([0.0, 1.0, -1.0, 2.5, -0.0, 3.0, np.nan, np.inf, -np.inf, 0.5])
finite = st.sampled_from([0.0, 1.0, -1.0, 2.5, 3.0, 0.5, -2.0, 4.0])


def draw_array(data, shape, elements=values, dtype=np.float64):
    n = int(np.prod(shape))
    return np.array(data.draw(st.lists(elements, min_size=n, max_size=n)), dtype).reshape(shape)


def draw_index(data, shape, high, unique_along=None):
    """Random indices in [0, high); with ``unique_along`` each line along that axis has no
    repeats (scatter's winner among repeats is undefined in PyTorch)."""
    n = int(np.prod(shape))
    if unique_along is None:
        return np.array(data.draw(st.lists(st.integers(0, high - 1), min_size=n, max_size=n)),
                        np.int64).reshape(shape)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    moved = list(shape)
    length = moved.pop(unique_along)
    lines = [rng.permutation(high)[:length] for _ in range(int(np.prod(moved)))]
    return np.moveaxis(np.array(lines, np.int64).reshape(*moved, length), -1, unique_along)


# --------------------------------------------------------------------------- loop references
def reference_scatter(x, dim, index, src, combine):
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        out[tuple(target)] = combine(out[tuple(target)], src[pos])
    return out


def reference_index_select(x, dim, index):
    moved = np.moveaxis(x, dim, 0)
    return np.moveaxis(np.stack([moved[i] for i in index]), 0, dim)


def reference_index_add(x, dim, index, source, alpha):
    out = np.moveaxis(x.copy(), dim, 0)
    src = np.moveaxis(source, dim, 0)
    for k, i in enumerate(index):
        out[i] = out[i] + alpha * src[k]
    return np.moveaxis(out, 0, dim)


def reference_take_along(x, dim, index):
    out = np.empty(index.shape, x.dtype)
    for pos in np.ndindex(*index.shape):
        source = list(pos)
        source[dim] = index[pos]
        out[pos] = x[tuple(source)]
    return out


def reference_repeat_interleave(row, counts):
    out = []
    for value, count in zip(row, counts):
        out.extend([value] * count)
    return out


# --------------------------------------------------------------------------- scatter family
shapes = st.sampled_from([(4,), (3, 4), (2, 3, 4), (4, 1), (1, 5)])


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data())
def test_scatter_and_scatter_add_against_reference_and_torch(shape, data):
    x = draw_array(data, shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    axis = dim % len(shape)
    index_shape = tuple(data.draw(st.integers(1, n)) if d != axis else data.draw(st.integers(1, n))
                        for d, n in enumerate(shape))
    src = draw_array(data, tuple(n + data.draw(st.integers(0, 1)) for n in index_shape))
    unique = draw_index(data, index_shape, shape[axis], unique_along=axis)
    repeated = draw_index(data, index_shape, shape[axis])
    want = reference_scatter(x, axis, unique, src, lambda old, new: new)
    np.testing.assert_array_equal(mp.scatter(mp.tensor(x), dim, mp.tensor(unique), mp.tensor(src)).numpy(), want)
    want_add = reference_scatter(x, axis, repeated, src, lambda old, new: old + new)
    got_add = mp.tensor(x).scatter_add(dim, mp.tensor(repeated), mp.tensor(src)).numpy()
    np.testing.assert_allclose(got_add, want_add, equal_nan=True)
    # a src larger than index: values only (PyTorch's backward refuses the shape mismatch)
    assert_parity(lambda lib, a, s, i: lib.scatter(a, dim, i, s), [x, src, unique])
    fitted = src[tuple(slice(0, n) for n in index_shape)]
    assert_parity(lambda lib, a, s, i: lib.scatter(a, dim, i, s), [x, fitted, unique], grads=(0, 1))
    assert_parity(lambda lib, a, s, i: lib.scatter_add(a, dim, i, s), [x, fitted, repeated],
                  grads=(0, 1), rtol=1e-12)
    assert_parity(lambda lib, a, i: a.scatter(dim, i, -7.5), [x, unique], grads=(0,))


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from([(5,), (3, 4), (2, 3, 3)]), data=st.data(),
       reduce=st.sampled_from(["sum", "prod", "mean", "amax", "amin"]), include_self=st.booleans())
def test_scatter_reduce_against_torch(shape, data, reduce, include_self):
    x = draw_array(data, shape, finite)
    axis = data.draw(st.integers(0, len(shape) - 1))
    index_shape = tuple(n if d != axis else data.draw(st.integers(1, 6)) for d, n in enumerate(shape))
    src = draw_array(data, index_shape, st.sampled_from([0.0, 1.0, -1.0, 2.0, 3.0, 2.0, 0.5]))
    index = draw_index(data, index_shape, shape[axis])
    assert_parity(lambda lib, a, s, i: lib.scatter_reduce(a, axis, i, s, reduce, include_self=include_self),
                  [x, src, index], grads=(0, 1), rtol=1e-10)
    combine = {"sum": np.add, "prod": np.multiply, "amax": max, "amin": min, "mean": np.add}[reduce]
    if reduce != "mean":
        start = x if include_self else x.copy()
        if not include_self:  # hit cells start from the first value landing on them
            hit = reference_scatter(np.zeros_like(x), axis, index, np.ones_like(src), lambda o, n: 1.0)
            ident = {"sum": 0.0, "prod": 1.0, "amax": -np.inf, "amin": np.inf}[reduce]
            start = np.where(hit == 1, ident, x)
        want = reference_scatter(start, axis, index, src, combine)
        np.testing.assert_allclose(mp.scatter_reduce(mp.tensor(x), axis, mp.tensor(index), mp.tensor(src),
                                                     reduce, include_self=include_self).numpy(), want)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_scatter_integer_and_bool_dtypes_match_torch(dtype):
    x = np.array([[1, 0, 3], [4, 5, 0]]).astype(dtype)
    src = np.array([[0, 1, 1], [1, 1, 0]]).astype(dtype)
    index = np.array([[1, 0, 1], [0, 1, 0]])
    assert_parity(lambda lib, a, s, i: lib.scatter(a, 0, i, s), [x, src, index])
    if dtype != np.bool_:
        assert_parity(lambda lib, a, s, i: lib.scatter_add(a, 1, i, s), [x, src, index])
        for reduce in ("sum", "prod", "amax", "amin", "mean"):
            assert_parity(lambda lib, a, s, i: lib.scatter_reduce(a, 1, i, s, reduce, include_self=False),
                          [x, src, index])


def test_scatter_legacy_reduce_and_zero_dim():
    x, index, src = np.ones((2, 3)), np.array([[0, 1, 0]]), np.array([[2.0, 3.0, 4.0]])
    for reduce in ("add", "multiply"):
        assert_parity(lambda lib, a, s, i: a.scatter(0, i, s, reduce=reduce), [x, src, index])
        assert_parity(lambda lib, a, i: a.scatter(0, i, 2.0, reduce=reduce), [x, index])
    assert_parity(lambda lib, a, i: lib.scatter(a, 0, i, 3.0), [np.array(1.0), np.array(0)], grads=(0,))


@pytest.mark.parametrize("reduce", ["prod", "amax"])
def test_scatter_reduce_float64_gradcheck(reduce):
    rng = np.random.default_rng(3)
    x = mp.tensor(rng.uniform(0.5, 2, (3, 4)), requires_grad=True)
    src = mp.tensor(rng.uniform(0.5, 2, (5, 4)), requires_grad=True)
    index = mp.tensor(rng.integers(0, 3, (5, 4)))
    assert mp.gradcheck(lambda a, s: mp.scatter_reduce(a, 0, index, s, reduce), [x, src])


def test_scatter_family_float64_gradchecks():
    rng = np.random.default_rng(0)
    x = mp.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    src = mp.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    index = mp.tensor([[0, 2, 1, 0], [2, 2, 0, 1], [1, 0, 2, 2]])
    assert mp.gradcheck(lambda a, s: mp.scatter_add(a, 0, index, s), [x, src])
    assert mp.gradcheck(lambda a, s: mp.scatter(a, 1, mp.tensor([[3, 1], [0, 2], [1, 3]]), s[:, :2]), [x, src])
    assert mp.gradcheck(lambda a, s: mp.index_add(a, 0, mp.tensor([2, 2, 0]), s, alpha=-1.5), [x, src])
    assert mp.gradcheck(lambda a, s: mp.index_copy(a, 1, mp.tensor([3, 0]), s[:, :2]), [x, src])
    assert mp.gradcheck(lambda a: mp.index_select(a, 1, mp.tensor([3, 3, 0])), [x])
    assert mp.gradcheck(lambda a: mp.masked_select(a, a.detach() > 0), [x])
    assert mp.gradcheck(lambda a: mp.take_along_dim(a, mp.tensor([[0, 0], [2, 1], [3, 3]]), 1), [x])
    assert mp.gradcheck(lambda a: mp.repeat_interleave(a, mp.tensor([2, 0, 3]), dim=0), [x])
    assert mp.gradcheck(lambda a: mp.tril(a, -1) + mp.triu(a, 2), [x])


# --------------------------------------------------------------------------- index_* family
@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data(), alpha=st.sampled_from([1, 2.0, -0.5]))
def test_index_ops_against_reference_and_torch(shape, data, alpha):
    x = draw_array(data, shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    axis = dim % len(shape)
    count = data.draw(st.integers(0, 6))
    index = draw_index(data, (count,), shape[axis])
    np.testing.assert_array_equal(mp.index_select(mp.tensor(x), dim, mp.tensor(index)).numpy(),
                                  reference_index_select(x, axis, index) if count else
                                  np.take(x, index, axis))
    assert_parity(lambda lib, a, i: lib.index_select(a, dim, i), [x, index], grads=(0,))
    source_shape = shape[:axis] + (count,) + shape[axis + 1:]
    source = draw_array(data, source_shape)
    if count:
        np.testing.assert_allclose(mp.index_add(mp.tensor(x), dim, mp.tensor(index), mp.tensor(source),
                                                alpha=alpha).numpy(),
                                   reference_index_add(x, axis, index, source, alpha), equal_nan=True)
    assert_parity(lambda lib, a, s, i: lib.index_add(a, dim, i, s, alpha=alpha), [x, source, index],
                  grads=(0, 1))
    unique = np.random.default_rng(count).permutation(shape[axis])[:count]
    unique_source = source[(slice(None),) * axis + (slice(0, unique.size),)]
    assert_parity(lambda lib, a, s, i: a.index_copy(dim, i, s), [x, unique_source, unique], grads=(0, 1))
    assert_parity(lambda lib, a, i: a.index_fill(dim, i, -3.0), [x, index], grads=(0,))


def test_index_fill_tensor_value_gets_the_filled_gradient():
    x = np.arange(6.0).reshape(2, 3)
    assert_parity(lambda lib, a, v, i: a.index_fill(1, i, v), [x, np.array(2.0), np.array([0, 2])],
                  grads=(0, 1))


def test_index_ops_integer_dtypes_and_zero_dim_match_torch():
    x = np.array([[1, 2, 3], [4, 5, 6]])
    assert_parity(lambda lib, a, i: lib.index_select(a, 1, i), [x, np.array([2, 2, 0])])
    assert_parity(lambda lib, a, s, i: lib.index_add(a, 0, i, s, alpha=3), [x, x[:1] * 2, np.array([1])])
    assert_parity(lambda lib, a, i: a.index_fill(0, i, 9), [x, np.array([1])])
    assert_parity(lambda lib, a, i: lib.index_select(a, 0, i), [np.array(1.5), np.array([0])])
    assert_parity(lambda lib, a, i: lib.index_select(a, 0, i), [x, np.array(1)])  # 0-d index


# --------------------------------------------------------------------------- in place
def test_in_place_forms_match_torch_and_record_gradients():
    x, src = np.arange(12.0).reshape(3, 4), np.ones((3, 4)) * 2
    index = np.array([[0, 1, 2, 0], [2, 0, 1, 1]])

    def chain(lib, a, s, i):
        y = a * 1.0  # not a leaf: in-place ops are recorded
        y.scatter_add_(0, i, s[:2]).scatter_(1, i[:, :2], s[:2, :2] * 3)
        y.index_add_(0, i[0, :2], s[:2], alpha=0.5).index_copy_(1, i[1, :2] % 4, s[:, :2] - 1)
        y.index_fill_(0, i[0, 2:3], -1.0).tril_(1).triu_(-1)
        return y.scatter_reduce_(1, i[:, :3], s[:2, :3], "amax")  # last: PyTorch's saves its output
    assert_parity(chain, [x, src, index], grads=(0, 1))
    leaf = mp.tensor(x, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        leaf.scatter_(0, mp.tensor(index), 1.0)
    plain = mp.tensor(x)
    assert plain.index_fill_(1, mp.tensor([0]), 5.0) is plain and plain.numpy()[0, 0] == 5.0


# --------------------------------------------------------------------------- masks, along dim
@settings(max_examples=50, deadline=None)
@given(shape=shapes, data=st.data())
def test_masked_select_and_take_along_dim_against_reference_and_torch(shape, data):
    x = draw_array(data, shape)
    mask = draw_array(data, shape[-1:], st.booleans(), np.bool_)  # broadcasts along the rest
    assert_parity(lambda lib, a, m: lib.masked_select(a, m), [x, mask], grads=(0,))
    np.testing.assert_array_equal(mp.masked_select(mp.tensor(x), mp.tensor(mask)).numpy(),
                                  np.array([x[p] for p in np.ndindex(*shape) if mask[p[-1]]], x.dtype))
    dim = data.draw(st.integers(0, len(shape) - 1))
    index_shape = tuple(n if d != dim else data.draw(st.integers(1, 4)) for d, n in enumerate(shape))
    index = draw_index(data, index_shape, shape[dim])
    np.testing.assert_array_equal(mp.take_along_dim(mp.tensor(x), mp.tensor(index), dim).numpy(),
                                  reference_take_along(x, dim, index))
    assert_parity(lambda lib, a, i: lib.take_along_dim(a, i, dim), [x, index], grads=(0,))
    with pytest.raises(RuntimeError, match="out of bounds"):  # PyTorch reads such memory unchecked
        mp.take_along_dim(mp.tensor(x), mp.tensor(index - shape[dim] - 1), dim)
    flat = draw_index(data, (3,), x.size)
    assert_parity(lambda lib, a, i: lib.take_along_dim(a, i), [x, flat], grads=(0,))


def test_take_along_dim_broadcasts_like_torch():
    x, index = np.arange(6.0).reshape(2, 3), np.array([[2], [0]])[:1]  # index (1, 1) broadcasts over rows
    assert_parity(lambda lib, a, i: lib.take_along_dim(a, i, 1), [x, index], grads=(0,))
    assert_parity(lambda lib, a, i: lib.take_along_dim(a, i, 0), [x[:1], np.array([[0, 0, 0], [0, 0, 0]])],
                  grads=(0,))


# --------------------------------------------------------------------------- repeat_interleave
@settings(max_examples=50, deadline=None)
@given(shape=shapes, data=st.data())
def test_repeat_interleave_against_reference_and_torch(shape, data):
    x = draw_array(data, shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    counts = np.array(data.draw(st.lists(st.integers(0, 3), min_size=shape[dim], max_size=shape[dim])))
    assert_parity(lambda lib, a, c: lib.repeat_interleave(a, c, dim), [x, counts], grads=(0,))
    assert_parity(lambda lib, a: a.repeat_interleave(2), [x], grads=(0,))
    assert_parity(lambda lib, a: lib.repeat_interleave(a, 3, dim=dim), [x], grads=(0,))
    rows = np.moveaxis(x, dim, -1).reshape(-1, shape[dim])
    got = np.moveaxis(mp.repeat_interleave(mp.tensor(x), mp.tensor(counts), dim).numpy(), dim, -1)
    picks = reference_repeat_interleave(range(shape[dim]), counts)
    np.testing.assert_array_equal(got.reshape(rows.shape[0], len(picks)), rows[:, picks])
    assert_parity(lambda lib, c: lib.repeat_interleave(c), [counts])


# --------------------------------------------------------------------------- unbind, tril/triu, count
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.bool_])
def test_unbind_tril_triu_count_nonzero_match_torch(dtype):
    x = np.array([[[1, 0, 2, 3], [0, 5, 0, 7], [8, 9, 0, 1]]] * 2).astype(dtype)
    grads = (0,) if dtype == np.float64 else ()
    for dim in (0, 1, -1):
        assert_parity(lambda lib, a: lib.unbind(a, dim), [x], grads=grads)
    for diagonal in (-3, -1, 0, 2, 5):
        assert_parity(lambda lib, a: lib.tril(a, diagonal), [x], grads=grads)
        assert_parity(lambda lib, a: a.triu(diagonal), [x], grads=grads)
    for dim in (None, 0, -1, (0, 2)):
        assert_parity(lambda lib, a: lib.count_nonzero(a, dim), [x])


def test_tril_reference_and_nan_count():
    x = np.arange(12.0).reshape(3, 4)
    want = np.array([[x[r, c] if c - r <= 1 else 0.0 for c in range(4)] for r in range(3)])
    np.testing.assert_array_equal(mp.tril(mp.tensor(x), 1).numpy(), want)
    assert mp.count_nonzero(mp.tensor([np.nan, 0.0, -0.0, np.inf])).item() == 2
    assert mp.broadcast_to(mp.tensor([1.0, 2.0]), (3, 2)).shape == (3, 2)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, err, text", [
    (lambda x: x.scatter(0, mp.tensor([[5]]), 1.0), RuntimeError, "out of bounds"),
    (lambda x: x.scatter(0, mp.tensor([[-1]]), 1.0), RuntimeError, "out of bounds"),
    (lambda x: x.scatter(0, mp.tensor([[0.0]]), 1.0), RuntimeError, "index must be an integer"),
    (lambda x: x.scatter(0, mp.tensor([[0]]), mp.ones(1, 1, dtype=mp.float64)), RuntimeError, "src must have"),
    (lambda x: x.scatter(0, mp.tensor([0]), mp.ones(1)), RuntimeError, "same number of dimensions"),
    (lambda x: x.scatter(0, mp.tensor([[0, 0]]), mp.ones(1, 1)), RuntimeError, "no larger than"),
    (lambda x: x.scatter(0, mp.tensor([[0]]), "a"), TypeError, "src must be"),
    (lambda x: x.scatter(0, mp.tensor([[0]]), 1.0, reduce="max"), ValueError, "reduce must be"),
    (lambda x: x.scatter_reduce(0, mp.tensor([[0]]), mp.ones(1, 1), "max"), ValueError, "reduce must be"),
    (lambda x: x.index_select(0, mp.tensor([3])), IndexError, "out of bounds"),
    (lambda x: x.index_select(0, mp.tensor([[0]])), IndexError, "must be a vector"),
    (lambda x: x.index_select(0, mp.tensor([0.0])), RuntimeError, "index must be an integer"),
    (lambda x: x.index_select(2, mp.tensor([0])), IndexError, "dimension out of range"),
    (lambda x: x.index_add(0, mp.tensor([3]), mp.ones(1, 4)), RuntimeError, "out of bounds"),
    (lambda x: x.index_add(0, mp.tensor([1]), mp.ones(2, 4)), RuntimeError, "source of shape"),
    (lambda x: x.index_add(0, mp.tensor([1]), mp.ones(1, 4, dtype=mp.float64)), RuntimeError, "dtype"),
    (lambda x: x.index_copy(0, mp.tensor([-1]), mp.ones(1, 4)), IndexError, "out of bounds"),
    (lambda x: x.index_fill(0, mp.tensor([3]), 1.0), IndexError, "out of bounds"),
    (lambda x: x.index_fill(0, mp.tensor([0]), mp.ones(2)), RuntimeError, "0-d tensor"),
    (lambda x: x.masked_select(mp.tensor([1, 0, 1, 0])), RuntimeError, "mask must be a bool"),
    (lambda x: x.masked_select(mp.ones(2, 4).bool()), RuntimeError, "cannot be broadcast"),
    (lambda x: x.take_along_dim(mp.tensor([[3]]), 0), RuntimeError, "out of bounds"),
    (lambda x: x.take_along_dim(mp.tensor([-1])), RuntimeError, "out of bounds"),
    (lambda x: x.take_along_dim(mp.tensor([1]), 0), RuntimeError, "same number of dimensions"),
    (lambda x: x.take_along_dim(mp.tensor([[0.0]]), 0), RuntimeError, "indices must be an integer"),
    (lambda x: x.repeat_interleave(mp.tensor([1, 2])), RuntimeError, "repeats has 2 entries"),
    (lambda x: x.repeat_interleave(-1), RuntimeError, "non-negative"),
    (lambda x: x.repeat_interleave(mp.tensor([1.0, 2.0, 1.0]), 0), RuntimeError, "integer tensor"),
    (lambda x: x.repeat_interleave(2, output_size=5), RuntimeError, "output_size=5"),
    (lambda x: mp.tril(mp.zeros(3)), RuntimeError, "at least 2 dimensions"),
    (lambda x: x.triu(0.5), TypeError, "diagonal must be an int"),
    (lambda x: x.unbind(2), IndexError, "dimension out of range"),
    (lambda x: x.count_nonzero((0, 0)), ValueError, "repeats an axis"),
])
def test_errors_name_the_argument(call, err, text):
    with pytest.raises(err, match=text):
        call(mp.zeros(3, 4))


def test_error_classes_are_torch_classes():
    """Each case above raises the class PyTorch raises for the same call."""
    x = torch.zeros(3, 4)
    for call, err in [(lambda: x.scatter(0, torch.tensor([[5]]), 1.0), RuntimeError),
                      (lambda: x.index_select(0, torch.tensor([3])), IndexError),
                      (lambda: x.index_add(0, torch.tensor([3]), torch.ones(1, 4)), RuntimeError),
                      (lambda: x.index_copy(0, torch.tensor([-1]), torch.ones(1, 4)), IndexError),
                      (lambda: x.index_fill(0, torch.tensor([3]), 1.0), IndexError),
                      (lambda: x.masked_select(torch.tensor([1, 0, 1, 0])), RuntimeError),
                      (lambda: x.repeat_interleave(-1), RuntimeError),
                      (lambda: torch.tril(torch.zeros(3)), RuntimeError)]:
        with pytest.raises(err):
            call()


# --------------------------------------------------------------------------- narrow, movedim, diagonal
@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from([(4,), (3, 4), (2, 3, 4), (2, 1, 3, 2)]), data=st.data())
def test_narrow_movedim_swapaxes_diagonal_match_torch(shape, data):
    x = draw_array(data, shape)
    n = len(shape)
    dim = data.draw(st.integers(-n, n - 1))
    size = shape[dim]
    start = data.draw(st.integers(-size, size))
    length = data.draw(st.integers(0, size - (start % size if start < 0 or start < size else size)))
    assert_parity(lambda lib, a: lib.narrow(a, dim, start, length), [x], grads=(0,))
    k = data.draw(st.integers(1, n))
    source = tuple(data.draw(st.permutations(range(n)))[:k])
    destination = tuple(d - n if data.draw(st.booleans()) else d
                        for d in data.draw(st.permutations(range(n)))[:k])
    assert_parity(lambda lib, a: lib.movedim(a, source, destination), [x], grads=(0,))
    assert_parity(lambda lib, a: a.moveaxis(source[0], destination[0]), [x], grads=(0,))
    assert_parity(lambda lib, a: lib.swapaxes(a, dim, -1), [x], grads=(0,))
    if n >= 2:
        offset = data.draw(st.integers(-4, 4))
        d1, d2 = data.draw(st.permutations(range(n)))[:2]
        assert_parity(lambda lib, a: lib.diagonal(a, offset, d1, d2), [x], grads=(0,))
    if n == 2:
        assert_parity(lambda lib, a: lib.trace(a), [x], grads=(0,))
        ints = np.arange(x.size).reshape(shape)
        assert_parity(lambda lib, a: a.trace(), [ints])
        np.testing.assert_array_equal(mp.trace(mp.tensor(ints)).item(),
                                      sum(ints[i, i] for i in range(min(shape))))


def test_diagonal_loop_reference_and_gradcheck():
    x = np.arange(24.0).reshape(2, 3, 4)
    got = mp.diagonal(mp.tensor(x), 1, 2, 1).numpy()
    # element k sits at index k along dim1 (axis 2) and k + offset along dim2 (axis 1)
    want = np.array([[x[b, k + 1, k] for k in range(2)] for b in range(2)])
    np.testing.assert_array_equal(got, want)
    assert mp.gradcheck(lambda a: mp.diagonal(a, -1) * 2, [mp.tensor(np.random.default_rng(0).standard_normal((4, 3)),
                                                                    requires_grad=True)])
    assert mp.gradcheck(lambda a: mp.narrow(a, 1, -3, 2), [mp.tensor(x, requires_grad=True)])


@pytest.mark.parametrize("call, err, text", [
    (lambda: mp.narrow(mp.zeros(3), 0, 4, 0), IndexError, "start"),
    (lambda: mp.narrow(mp.zeros(3), 0, 1, 3), RuntimeError, "exceeds"),
    (lambda: mp.narrow(mp.tensor(1.0), 0, 0, 1), RuntimeError, "0-d"),
    (lambda: mp.movedim(mp.zeros(2, 3), (0, 0), (1, 0)), RuntimeError, "repeated dim"),
    (lambda: mp.movedim(mp.zeros(2, 3), (0,), (1, 0)), RuntimeError, "same number"),
    (lambda: mp.diagonal(mp.zeros(3), 0), RuntimeError, "at least 2 dimensions"),
    (lambda: mp.diagonal(mp.zeros(3, 3), 0, 1, -1), RuntimeError, "cannot be the same"),
    (lambda: mp.trace(mp.zeros(2, 2, 2)), RuntimeError, "2-d"),
    (lambda: mp.swapaxes(mp.zeros(2, 3), 0, 2), IndexError, "dimension out of range"),
])
def test_shape_extras_errors(call, err, text):
    with pytest.raises(err, match=text):
        call()
