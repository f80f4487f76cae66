"""torch.utils.data samplers and DataLoader(sampler=, batch_sampler=) against torch's."""
import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import minipool as mp
import minipool.utils.data as data


def _ds(lib, n=10):
    return getattr(lib, "utils").data.TensorDataset(lib.arange(n), lib.arange(n) * 10) if lib is torch \
        else data.TensorDataset(mp.arange(n), mp.arange(n) * 10)


@pytest.mark.parametrize("make", [
    lambda m, ds: m.SequentialSampler(ds),
    lambda m, ds: m.BatchSampler(m.SequentialSampler(ds), 3, drop_last=False),
    lambda m, ds: m.BatchSampler(m.SequentialSampler(ds), 3, drop_last=True),
    lambda m, ds: m.BatchSampler(range(4), 4, False),
])
def test_deterministic_samplers_match_torch(make):
    ours, theirs = make(data, _ds(mp)), make(tdata, _ds(torch))
    assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("num_samples", [None, 3, 10, 23])
def test_random_sampler_without_replacement_is_whole_permutations(num_samples):
    ours = data.RandomSampler(_ds(mp), num_samples=num_samples, generator=mp.Generator().manual_seed(1))
    theirs = tdata.RandomSampler(_ds(torch), num_samples=num_samples)
    drawn = list(ours)
    assert len(drawn) == len(ours) == len(theirs) == len(list(theirs))
    for start in range(0, len(drawn) - len(drawn) % 10, 10):  # each full block is a permutation
        assert sorted(drawn[start:start + 10]) == list(range(10))
    assert len(set(drawn[len(drawn) - len(drawn) % 10:])) == len(drawn) % 10


def test_random_sampler_with_replacement_and_epochs():
    g = mp.Generator().manual_seed(3)
    s = data.RandomSampler(range(5), replacement=True, num_samples=2000, generator=g)
    drawn = np.array(list(s))
    assert drawn.min() >= 0 and drawn.max() <= 4 and abs(np.bincount(drawn).mean() - 400) < 1e-9
    assert np.bincount(drawn).min() > 300  # each of 5 values about 400 times
    assert list(s) != list(s)  # a Generator draws on: a new order each epoch
    fixed = data.RandomSampler(range(5), generator=7)
    assert list(fixed) == list(fixed)  # an int seed: the same order every epoch


def test_subset_random_sampler_permutes_the_given_indices():
    s = data.SubsetRandomSampler(mp.tensor([8, 2, 5, 9]), generator=0)
    t = tdata.SubsetRandomSampler([8, 2, 5, 9])
    assert sorted(s) == sorted(t) == [2, 5, 8, 9] and len(s) == len(t) == 4
    orders = {tuple(data.SubsetRandomSampler(range(6), generator=seed)) for seed in range(10)}
    assert len(orders) > 5


def test_weighted_random_sampler_follows_the_weights():
    w = [0.1, 0.0, 0.6, 0.3]
    drawn = np.array(list(data.WeightedRandomSampler(w, 30_000, generator=0)))
    freq = np.bincount(drawn, minlength=4) / drawn.size
    np.testing.assert_allclose(freq, w, atol=0.015)
    once = list(data.WeightedRandomSampler(mp.tensor(w), 3, replacement=False, generator=1))
    theirs = list(tdata.WeightedRandomSampler(torch.tensor(w), 3, replacement=False))
    assert len(set(once)) == len(set(theirs)) == 3 and 1 not in once


@pytest.mark.parametrize("call, error, text", [
    (lambda m: m.RandomSampler(range(3), replacement=1), TypeError, "replacement must be a bool"),
    (lambda m: m.RandomSampler(range(3), num_samples=0), ValueError, "num_samples must be an int >= 1"),
    (lambda m: m.RandomSampler([]), ValueError, "num_samples"),
    (lambda m: m.WeightedRandomSampler([1.0, 2.0], 0), ValueError, "num_samples must be an int >= 1"),
    (lambda m: m.WeightedRandomSampler([1.0, 2.0], 2, replacement=1), ValueError, "replacement must be a bool"),
    (lambda m: m.WeightedRandomSampler([[1.0, 2.0]], 2), ValueError, "weights must be a 1-D sequence"),
    (lambda m: m.BatchSampler(range(3), 0, False), ValueError, "batch_size must be an int >= 1"),
    (lambda m: m.BatchSampler(range(3), 2, 1), ValueError, "drop_last must be a bool"),
])
def test_bad_sampler_arguments_raise_torchs_error_class_naming_the_argument(call, error, text):
    with pytest.raises(error):
        call(tdata)
    with pytest.raises(error, match=text):
        call(data)


def test_negative_weights_are_refused_when_made():
    with pytest.raises(ValueError, match="WeightedRandomSampler: weights must be finite, >= 0"):
        data.WeightedRandomSampler([-1.0, 2.0], 2)
    with pytest.raises(RuntimeError):  # torch: at the first epoch
        list(tdata.WeightedRandomSampler([-1.0, 2.0], 2))


@pytest.mark.parametrize("kwargs", [
    dict(batch_size=3, sampler=[9, 0, 4, 4, 2]),
    dict(batch_size=2, sampler=[9, 0, 4, 4, 2], drop_last=True),
    dict(batch_sampler=[[4, 0], [1], [7, 7, 7]]),
    dict(batch_sampler=tdata.BatchSampler(range(7), 3, False)),
])
def test_dataloader_with_a_sampler_serves_its_indices_like_torch(kwargs):
    ours = list(data.DataLoader(_ds(mp), **kwargs))
    theirs = list(tdata.DataLoader(_ds(torch), **kwargs))
    assert len(ours) == len(theirs) == len(data.DataLoader(_ds(mp), **kwargs))
    for (x, y), (tx, ty) in zip(ours, theirs):
        assert x.tolist() == tx.tolist() and y.tolist() == ty.tolist()


def test_dataloader_with_our_samplers_and_an_image_dataset():
    ds = data.TensorDataset(mp.randn(12, 1, 4, 4), mp.tensor(np.arange(12) % 3))
    sampler = data.WeightedRandomSampler([0.0] * 6 + [1.0] * 6, 8, generator=0)
    loader = data.DataLoader(ds, batch_size=4, sampler=sampler)
    labels = np.concatenate([y.numpy() for _, y in loader])
    assert len(loader) == 2 and labels.size == 8
    batches = data.DataLoader(ds, batch_sampler=data.BatchSampler(data.SubsetRandomSampler(range(5), generator=1), 2, False))
    seen = sorted(int(v) for _, y in batches for v in y.numpy())
    assert seen == sorted(v % 3 for v in range(5))


@pytest.mark.parametrize("kwargs, text", [
    (dict(sampler=[0], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], shuffle=True), "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0]], sampler=[0]), "batch_sampler option is mutually exclusive"),
])
def test_dataloader_conflicting_options_are_torchs_value_errors(kwargs, text):
    with pytest.raises(ValueError):
        tdata.DataLoader(_ds(torch), **kwargs)
    with pytest.raises(ValueError, match=text):
        data.DataLoader(_ds(mp), **kwargs)


def test_dataloader_sampler_must_be_iterable():
    with pytest.raises(TypeError, match="DataLoader: sampler must be an iterable of indices"):
        data.DataLoader(_ds(mp), sampler=5)


def test_a_huge_num_samples_is_a_named_value_error_not_a_memory_error():
    sampler = data.RandomSampler(range(3), replacement=True, num_samples=2 ** 62)
    with pytest.raises(ValueError, match="RandomSampler: num_samples=4611686018427387904 asks for a result larger"):
        iter(sampler)
