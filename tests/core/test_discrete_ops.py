"""mp.unique, mp.bincount and mp.multinomial against torch, loop references and statistics."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import minipool as mp


def _unique_by_loop(values):
    """Distinct values ascending (every NaN its own), inverse and counts, element by element."""
    flat = [float(v) for v in np.ravel(values)]
    distinct = sorted({v for v in flat if v == v}) + [v for v in flat if v != v]
    inverse, counts, seen_nan = [], [0] * len(distinct), 0
    n_plain = len({v for v in flat if v == v})
    for v in flat:
        if v != v:
            i = n_plain + seen_nan
            seen_nan += 1
        else:
            i = distinct.index(v)
        inverse.append(i)
        counts[i] += 1
    return distinct, inverse, counts


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(0, 4), st.integers(0, 5)),
              elements=st.sampled_from([0.0, 1.0, -2.5, 3.0, np.nan, np.inf, -np.inf])))
def test_unique_matches_a_loop_and_torch(a):
    values, inverse, counts = mp.unique(mp.tensor(a), return_inverse=True, return_counts=True)
    want_values, want_inverse, want_counts = _unique_by_loop(a)
    np.testing.assert_array_equal(values.numpy(), want_values)
    assert inverse.shape == a.shape and inverse.dtype == np.int64
    assert inverse.numpy().ravel().tolist() == want_inverse and counts.tolist() == want_counts
    tv, ti, tc = torch.unique(torch.tensor(a), return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(values.numpy(), tv.numpy())
    if not np.isnan(a).any():  # which NaN gets which slot is torch's sort order: ours is the input's
        np.testing.assert_array_equal(inverse.numpy(), ti.numpy())
    np.testing.assert_array_equal(counts.numpy(), tc.numpy())


@pytest.mark.parametrize("dim", [0, 1, -1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_unique_along_a_dim_matches_torch(dim, seed):
    a = np.random.default_rng(seed).integers(0, 2, (4, 3, 2))
    ours = mp.unique(mp.tensor(a), dim=dim, return_inverse=True, return_counts=True)
    theirs = torch.unique(torch.tensor(a), dim=dim, return_inverse=True, return_counts=True)
    for x, y in zip(ours, theirs):
        assert x.dtype == np.int64
        np.testing.assert_array_equal(x.numpy(), y.numpy())


@pytest.mark.parametrize("make", [lambda lib: lib.tensor(3), lambda lib: lib.tensor([], dtype=lib.int64),
                                  lambda lib: lib.tensor([True, False, True]),
                                  lambda lib: lib.zeros((2, 0), dtype=lib.int64)])
def test_unique_edge_shapes_and_dtypes_match_torch(make):
    for flags in itertools.product([False, True], repeat=2):
        ours = mp.unique(make(mp), return_inverse=flags[0], return_counts=flags[1])
        theirs = torch.unique(make(torch), return_inverse=flags[0], return_counts=flags[1])
        ours, theirs = (ours, theirs) if isinstance(ours, tuple) else ((ours,), (theirs,))
        for x, y in zip(ours, theirs):
            assert x.shape == tuple(y.shape) and str(x.dtype) == str(y.dtype).replace("torch.", "")
            np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_unique_bad_arguments_are_named():
    with pytest.raises(IndexError, match="unique: dim 3 is out of range"):
        mp.unique(mp.zeros(2, 2), dim=3)
    with pytest.raises(TypeError, match="unique: return_counts must be a bool"):
        mp.unique(mp.zeros(2), return_counts="yes")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=30), st.integers(0, 12), st.booleans())
def test_bincount_matches_a_loop_and_torch(values, minlength, weighted):
    rng = np.random.default_rng(len(values))
    weights = rng.standard_normal(len(values)).astype(np.float32) if weighted else None
    ours = mp.bincount(mp.tensor(values, dtype=mp.int64), None if weights is None else mp.tensor(weights), minlength)
    theirs = torch.bincount(torch.tensor(values, dtype=torch.int64),
                            None if weights is None else torch.tensor(weights), minlength)
    want = [0.0] * max(minlength, max(values) + 1 if values else 0)
    for i, v in enumerate(values):
        want[v] += 1 if weights is None else float(weights[i])
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")  # (empty input: int64 in both)
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weights", [np.array([1, 2]), np.array([1.0, 2.0]), np.array([1.0, 2.0], np.float32)])
def test_bincount_weight_dtypes_match_torch(weights):
    ours = mp.bincount(mp.tensor([0, 1]), mp.tensor(weights))
    theirs = torch.bincount(torch.tensor([0, 1]), torch.tensor(weights))
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")


@pytest.mark.parametrize("call, error", [
    (lambda lib: lib.bincount(lib.tensor([[1]])), RuntimeError),
    (lambda lib: lib.bincount(lib.tensor([-1])), RuntimeError),
    (lambda lib: lib.bincount(lib.tensor([1.0])), NotImplementedError),
    (lambda lib: lib.bincount(lib.tensor([True])), NotImplementedError),
    (lambda lib: lib.bincount(lib.tensor([1]), minlength=-1), RuntimeError),
    (lambda lib: lib.bincount(lib.tensor([1, 2]), lib.tensor([1.0])), RuntimeError),
])
def test_bincount_refuses_what_torch_refuses(call, error):
    with pytest.raises(error):
        call(torch)
    with pytest.raises(error, match="bincount: (input|minlength|weights)"):
        call(mp)


def test_multinomial_with_replacement_follows_the_weights():
    w = np.array([1.0, 2.0, 3.0, 0.0, 4.0])
    draws = mp.multinomial(mp.tensor(w), 50_000, replacement=True, generator=0).numpy()
    assert draws.dtype == np.int64 and draws.shape == (50_000,)
    freq = np.bincount(draws, minlength=5) / draws.size
    p = w / w.sum()
    assert freq[3] == 0
    np.testing.assert_allclose(freq, p, atol=5 * np.sqrt(p * (1 - p) / draws.size).max())


def test_multinomial_without_replacement_draws_in_sequence():
    """First and second draws against the sequential rule: each draw proportional to the
    weights not drawn yet (a loop over the categories)."""
    w = np.array([1.0, 0.0, 2.0, 5.0])
    rows = 40_000
    draws = mp.multinomial(mp.tensor(np.tile(w, (rows, 1))), 3, generator=1).numpy()
    assert draws.shape == (rows, 3)
    assert all(len(set(r)) == 3 for r in draws[:200]) and not np.any(draws == 1)
    first = np.bincount(draws[:, 0], minlength=4) / rows
    second_want = np.zeros(4)
    for i in range(4):
        for j in range(4):
            if i != j and w[i] > 0:
                second_want[j] += w[i] / w.sum() * w[j] / (w.sum() - w[i])
    second = np.bincount(draws[:, 1], minlength=4) / rows
    np.testing.assert_allclose(first, w / w.sum(), atol=0.01)
    np.testing.assert_allclose(second, second_want, atol=0.01)


def test_multinomial_without_replacement_takes_zero_weights_last_like_torch():
    w = [0.0, 1.0, 0.0, 2.0, 0.0]
    assert sorted(torch.multinomial(torch.tensor(w), 5).tolist()) == [0, 1, 2, 3, 4]
    seen_last = set()
    for seed in range(30):
        d = mp.multinomial(mp.tensor(w), 5, generator=seed).tolist()
        assert sorted(d) == [0, 1, 2, 3, 4] and set(d[:2]) == {1, 3}
        seen_last.add(d[-1])
    assert seen_last == {0, 2, 4}  # the zero-weight ones come in a random order


def test_multinomial_shapes_and_reproducibility_like_torch():
    w = mp.rand(3, 6, generator=0) + 0.1
    a = mp.multinomial(w, 4, generator=mp.Generator().manual_seed(7))
    b = mp.multinomial(w, 4, generator=mp.Generator().manual_seed(7))
    assert a.shape == tuple(torch.multinomial(torch.tensor(w.numpy()), 4).shape) == (3, 4)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("weights, n, replacement", [
    ([1.0, -1.0], 1, False), ([0.0, 0.0], 1, True), ([1.0, float("nan")], 1, True),
    ([1.0, float("inf")], 1, True), ([1.0, 2.0], 3, False), ([1.0, 0.0], 3, False),
    ([1.0, 2.0], 0, True), ([[[1.0]]], 1, True),
])
def test_multinomial_refuses_what_torch_refuses(weights, n, replacement):
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.tensor(weights), n, replacement)
    with pytest.raises(RuntimeError, match="multinomial: (input|num_samples|every row|cannot draw)"):
        mp.multinomial(mp.tensor(weights), n, replacement)


def test_multinomial_of_integers_is_refused_like_torch():
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.tensor([1, 2]), 1)
    with pytest.raises(RuntimeError, match="multinomial: input must be a float tensor"):
        mp.multinomial(mp.tensor([1, 2]), 1)
