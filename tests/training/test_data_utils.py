"""minipool.utils.data: torch.utils.data's Dataset, TensorDataset, Subset, ConcatDataset,
random_split, default_collate and DataLoader options, checked against PyTorch's."""
import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
from minipool.utils.data import (ConcatDataset, DataLoader, Dataset, Subset, TensorDataset,
                                 default_collate, random_split)

torch = pytest.importorskip("torch")
tdata = pytest.importorskip("torch.utils.data")


def as_numpy(batch):
    """A collated batch (minipool or torch) as nested plain values for comparison."""
    if isinstance(batch, mp.Tensor):
        return ("tensor", str(batch.dtype), batch.numpy().tolist())
    if isinstance(batch, torch.Tensor):
        return ("tensor", str(batch.numpy().dtype), batch.numpy().tolist())
    if isinstance(batch, dict):
        return {k: as_numpy(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return (type(batch).__name__ if hasattr(batch, "_fields") else "seq",
                [as_numpy(v) for v in batch])
    return batch


Point = collections.namedtuple("Point", "x y")
SAMPLE_KINDS = {
    "ints": lambda i: i,
    "floats": lambda i: i / 4,
    "bools": lambda i: i % 2 == 0,
    "arrays f32": lambda i: np.full((2, 3), i, np.float32),
    "arrays i16": lambda i: np.arange(3, dtype=np.int16) + i,
    "numpy scalars": lambda i: np.float64(i) / 3,
    "pairs": lambda i: (np.full(2, i, np.float32), i),
    "lists": lambda i: [i, i / 2],
    "dicts": lambda i: {"a": np.float32(i), "b": [i, str(i)]},
    "strings": lambda i: f"s{i}",
    "namedtuples": lambda i: Point(i, np.full(2, i, np.float64)),
}


@pytest.mark.parametrize("kind", sorted(SAMPLE_KINDS))
def test_default_collate_matches_torch(kind):
    samples = [SAMPLE_KINDS[kind](i) for i in range(5)]
    to_torch = {"pairs": lambda s: s}.get(kind, lambda s: s)
    ours = default_collate(samples)
    theirs = tdata.default_collate([to_torch(s) for s in samples])
    assert as_numpy(ours) == as_numpy(theirs)


def test_default_collate_stacks_tensors_and_keeps_their_dtype():
    samples = [(mp.tensor(np.arange(3, dtype=np.float64) + i), mp.tensor(i)) for i in range(4)]
    x, y = default_collate(samples)
    tx, ty = tdata.default_collate([(torch.arange(3, dtype=torch.float64) + i, torch.tensor(i))
                                    for i in range(4)])
    assert x.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(x.numpy(), tx.numpy())
    np.testing.assert_array_equal(y.numpy(), ty.numpy())


@pytest.mark.parametrize("batch, err, text", [
    ([], TypeError, "non-empty list"),
    ([(1, 2), (3,)], ValueError, "same number of fields"),
    ([object(), object()], TypeError, "collate_fn="),
    ([np.zeros(2), 3], TypeError, "mixes ndarray and int"),
    ([np.array(["a"]), np.array(["b"])], TypeError, "dtype <U1"),
])
def test_default_collate_refuses_what_it_cannot_batch(batch, err, text):
    with pytest.raises(err, match=text):
        default_collate(batch)


def test_tensor_dataset_and_loader_give_torch_batches():
    X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    Y = np.arange(10)
    ours = list(DataLoader(TensorDataset(mp.tensor(X), mp.tensor(Y)), batch_size=4))
    theirs = list(tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)),
                                   batch_size=4))
    assert len(ours) == len(theirs) == 3
    for (x, y), (tx, ty) in zip(ours, theirs):
        np.testing.assert_array_equal(x.numpy(), tx.numpy())
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
        assert y.dtype == np.int64


def test_loader_keeps_float_targets_and_extra_fields():
    # regression targets and a third field: batched as they are, never cast to int labels
    X, Y, W = mp.randn(6, 2), mp.randn(6) * 10, mp.tensor(np.arange(6.0))
    x, y, w = next(iter(DataLoader(TensorDataset(X, Y, W), batch_size=6)))
    np.testing.assert_array_equal(y.numpy(), Y.numpy())
    assert y.dtype == np.float32 and w.dtype == np.float64


class Squares(Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": np.float32(i), "y": i * i}


def test_own_dataset_shuffled_covers_every_sample_once_and_is_reproducible():
    mp.manual_seed(3)
    a = [b["y"].numpy().tolist() for b in DataLoader(Squares(), batch_size=3, shuffle=True)]
    mp.manual_seed(3)
    b = [b["y"].numpy().tolist() for b in DataLoader(Squares(), batch_size=3, shuffle=True)]
    assert a == b
    assert sorted(v for batch in a for v in batch) == [i * i for i in range(7)]


def test_collate_fn_is_used():
    loader = DataLoader(Squares(), batch_size=2, collate_fn=lambda samples: len(samples))
    assert list(loader) == [2, 2, 2, 1]


def test_transform_needs_image_label_pairs():
    ds = TensorDataset(mp.zeros(4, 1, 6, 6), mp.tensor(np.arange(4)))
    flip = lambda images, rng: images[..., ::-1]  # noqa: E731
    images, labels = next(iter(DataLoader(ds, batch_size=4, transform=flip)))
    assert images.shape == (4, 1, 6, 6) and labels.dtype == np.int64
    with pytest.raises(ValueError, match="integer class labels"):
        next(iter(DataLoader(TensorDataset(mp.zeros(4, 1, 6, 6), mp.randn(4)), batch_size=4,
                             transform=flip)))


@pytest.mark.parametrize("kwargs, text", [
    (dict(num_workers=2), "num_workers=2 is not supported"),
    (dict(num_workers=-1), "num_workers must be an int >= 0"),
    (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]]), "batch_sampler option is mutually exclusive with batch_size"),
    (dict(persistent_workers=True), "persistent_workers is an option of worker processes"),
    (dict(prefetch_factor=2), "prefetch_factor is an option of worker processes"),
    (dict(worker_init_fn=print), "worker_init_fn is an option of worker processes"),
    (dict(timeout=5), "timeout is an option of worker processes"),
])
def test_worker_options_are_refused_by_name(kwargs, text):
    with pytest.raises(ValueError, match=text):
        DataLoader(Squares(), batch_size=2, **kwargs)


def test_pin_memory_and_zero_workers_are_accepted():
    assert len(list(DataLoader(Squares(), batch_size=4, num_workers=0, pin_memory=True))) == 2


@pytest.mark.filterwarnings("ignore:Length of split")  # torch warns about empty parts
@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), parts=st.integers(1, 5), data=st.data())
def test_random_split_lengths_match_torch(n, parts, data):
    fractions = data.draw(st.lists(st.integers(1, 9), min_size=parts, max_size=parts))
    fractions = [f / sum(fractions) for f in fractions]
    try:
        theirs = tdata.random_split(list(range(n)), fractions,
                                    generator=torch.Generator().manual_seed(0))
    except ValueError:  # the fractions' float sum came out above 1: both refuse
        with pytest.raises(ValueError, match="random_split: lengths"):
            random_split(list(range(n)), fractions, generator=0)
        return
    ours = random_split(list(range(n)), fractions, generator=0)
    assert [len(p) for p in ours] == [len(p) for p in theirs]
    assert sorted(i for p in ours for i in p) == list(range(n))


def test_random_split_int_lengths_and_errors():
    a, b = random_split(range(10), [7, 3], generator=1)
    assert len(a) == 7 and len(b) == 3 and set(a) | set(b) == set(range(10))
    with pytest.raises(ValueError, match="lengths sum to 9, but the dataset has 10"):
        random_split(range(10), [6, 3])
    with pytest.raises(ValueError, match="lengths must be ints >= 0"):
        random_split(range(10), [11, -1])


def test_subset_and_concat_index_like_torch():
    base = list(range(10, 20))
    sub = Subset(base, [3, 1, 4])
    assert [sub[i] for i in range(len(sub))] == [tdata.Subset(base, [3, 1, 4])[i] for i in range(3)]
    parts = [list(range(3)), [], list(range(10, 14))]
    ours, theirs = ConcatDataset(parts), tdata.ConcatDataset(parts)
    assert len(ours) == len(theirs) == 7
    assert [ours[i] for i in range(-7, 7)] == [theirs[i] for i in range(-7, 7)]
    with pytest.raises(IndexError, match="out of range"):
        ours[7]
    assert len(Squares() + Squares()) == 14


def test_dataset_base_class_says_what_to_define():
    with pytest.raises(NotImplementedError, match="must define __getitem__"):
        Dataset()[0]


def test_tensor_dataset_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(mp.zeros(3, 2), mp.zeros(4))


def test_torch_import_path_works_in_a_plain_script():
    import minipool.utils.data as d
    assert d.DataLoader is mp.data.DataLoader and mp.utils.data is d
