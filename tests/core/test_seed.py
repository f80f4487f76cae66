"""mp.manual_seed and the one generator rule (None / int seed / np.random.Generator) everywhere."""
import copy

import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool.data import ArrayDataset, DataLoader
from minipool.data.transforms import RandomCrop
from minipool.nn import init


def _dataset(n=20):
    images = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)
    return ArrayDataset(images, np.arange(n) % 10)


NAMES = ["x", "noise", "out", "out_again", "functional", "pooled", "order", "init"]


def _one_run(seed):
    """Everything random in minipool, with no generator passed anywhere."""
    mp.manual_seed(seed)
    model = mp.nn.Sequential(mp.nn.Conv2d(1, 3, 3), mp.nn.ReLU(), mp.nn.StochasticPool2d(2),
                             mp.nn.Flatten(), mp.nn.Dropout(0.5), mp.nn.Linear(48, 4))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    x = mp.rand(2, 1, 10, 10)
    noise = mp.randn(5)
    out = model(x).numpy().copy()          # stochastic pooling and dropout both draw here
    out_again = model(x).numpy().copy()    # the next draws of the same sequence
    functional = F.dropout(mp.ones(16), 0.5).numpy().copy()
    pooled = F.stochastic_pool2d(mp.rand(1, 2, 4, 4), 2).numpy().copy()
    order = np.concatenate([ids.numpy() for _, ids in DataLoader(_dataset(), batch_size=7, shuffle=True)])
    init_w = init.normal_(mp.zeros(6)).numpy().copy()
    return weights, x.numpy().copy(), noise.numpy().copy(), out, out_again, functional, pooled, order, init_w


def test_manual_seed_reproduces_every_source_of_randomness():
    first, second = _one_run(0), _one_run(0)
    assert first[0].keys() == second[0].keys()
    assert all(np.array_equal(first[0][k], second[0][k]) for k in first[0])
    # each part on its own, so a source that ignored the seed is named by the failure
    for name, part_a, part_b in zip(NAMES, first[1:], second[1:]):
        assert np.array_equal(part_a, part_b), name


def test_a_different_seed_changes_every_source():
    a, b = _one_run(0), _one_run(1)
    assert not any(np.array_equal(a[0][k], b[0][k]) for k in a[0])   # every weight differs
    for name, x, y in zip(NAMES, a[1:], b[1:]):
        assert not np.array_equal(x, y), name


def test_draws_are_not_repeated_within_a_run():
    mp.manual_seed(3)
    drop = mp.nn.Dropout(0.5)
    masks = [drop(mp.ones(64)).numpy() for _ in range(3)]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])


def test_layer_built_before_the_seed_follows_it():
    pool = mp.nn.StochasticPool2d(2)          # holds the shared default generator
    x = mp.rand(1, 3, 8, 8, generator=0)
    mp.manual_seed(5)
    a = pool(x).numpy()
    mp.manual_seed(5)
    b = pool(x).numpy()
    assert np.array_equal(a, b)


def test_manual_seed_returns_the_default_generator_and_remembers_the_seed():
    g = mp.manual_seed(7)
    assert g is mp.default_generator() and isinstance(g, np.random.Generator)
    assert mp.initial_seed() == 7
    # NumPy's own generator seeded the same way gives the same stream (the documented rule)
    assert g.random() == np.random.default_rng(7).random()


@pytest.mark.parametrize("bad,err", [(-1, ValueError), (1.5, TypeError), ("0", TypeError),
                                     (True, TypeError), (None, TypeError), ([1, -2], ValueError)])
def test_manual_seed_bad_input(bad, err):
    with pytest.raises(err, match="manual_seed: seed"):
        mp.manual_seed(bad)


# ------------------------------------------------------------ one resolver, one rule
def _entry_points():
    """name -> callable(generator) returning a fresh draw as an array."""
    x = mp.tensor(np.random.default_rng(0).uniform(0.1, 1.0, (1, 4, 8, 8)))  # 64 windows
    return {
        "randn": lambda g: mp.randn(8, generator=g).numpy(),
        "rand": lambda g: mp.rand(8, generator=g).numpy(),
        "init.uniform_": lambda g: init.uniform_(mp.zeros(8), generator=g).numpy(),
        "init.kaiming_normal_": lambda g: init.kaiming_normal_(mp.zeros(4, 4), generator=g).numpy(),
        "F.dropout": lambda g: F.dropout(mp.ones(32), 0.5, generator=g).numpy(),
        "F.stochastic_pool2d": lambda g: F.stochastic_pool2d(x, 2, generator=g).numpy(),
        "nn.Dropout": lambda g: mp.nn.Dropout(0.5, generator=g)(mp.ones(32)).numpy(),
        "nn.StochasticPool2d": lambda g: mp.nn.StochasticPool2d(2, generator=g)(x).numpy(),
        "nn.Linear": lambda g: mp.nn.Linear(4, 3, generator=g).weight.numpy().copy(),
        "DataLoader": lambda g: np.concatenate(
            [y.numpy() for _, y in DataLoader(_dataset(), 20, shuffle=True, generator=g)]),
    }


@pytest.mark.parametrize("name", sorted(_entry_points()))
def test_int_seed_generator_and_none_agree_everywhere(name):
    draw = _entry_points()[name]
    # an int seed: the same numbers every call
    assert np.array_equal(draw(11), draw(11))
    # an int seed is np.random.default_rng(seed)
    assert np.array_equal(draw(11), draw(np.random.default_rng(11)))
    # a Generator keeps working and advances
    g = np.random.default_rng(4)
    first, second = draw(g), draw(g)
    assert np.array_equal(first, draw(np.random.default_rng(4)))
    assert not np.array_equal(first, second)
    # None: the shared default, reseeded by manual_seed
    mp.manual_seed(2)
    a = draw(None)
    mp.manual_seed(2)
    assert np.array_equal(a, draw(None))


@pytest.mark.parametrize("name", sorted(_entry_points()))
@pytest.mark.parametrize("bad,err,msg", [(-3, ValueError, "must be >= 0"), (2.0, TypeError, "got float"),
                                         ("seed", TypeError, "got str"), (True, TypeError, "got bool"),
                                         (np.random.RandomState(0), TypeError, "got RandomState")])
def test_bad_generators_are_rejected_everywhere(name, bad, err, msg):
    with pytest.raises(err, match=msg):
        _entry_points()[name](bad)


def test_layers_keep_none_and_resolve_a_seed_once():
    # one rule for every layer and transform that takes generator=: None stays None (the shared
    # default at each call, so a deep copy still follows manual_seed); a seed becomes one Generator
    layers = {"Dropout": lambda g: mp.nn.Dropout(0.5, generator=g),
              "Dropout2d": lambda g: mp.nn.Dropout2d(0.5, generator=g),
              "StochasticPool2d": lambda g: mp.nn.StochasticPool2d(2, generator=g),
              "FractionalMaxPool2d": lambda g: mp.nn.FractionalMaxPool2d(2, output_size=3, generator=g),
              "RandomCrop": lambda g: RandomCrop(4, generator=g)}
    for name, make in layers.items():
        assert make(None).generator is None, name
        seeded = make(5).generator
        assert isinstance(seeded, np.random.Generator), name
        assert seeded.random() == np.random.default_rng(5).random(), name
        g = np.random.default_rng(1)
        assert make(g).generator is g, name
    x = mp.tensor(np.random.default_rng(0).uniform(0.1, 1.0, (1, 2, 8, 8)))
    layer = copy.deepcopy(mp.nn.StochasticPool2d(2))
    mp.manual_seed(3)
    first = layer(x).numpy()
    mp.manual_seed(3)
    np.testing.assert_array_equal(layer(x).numpy(), first)
    mp.manual_seed(3)
    np.testing.assert_array_equal(F.stochastic_pool2d(x, 2, generator=None).numpy(), first)


def test_int_seeded_layer_init_draws_weight_and_bias_from_one_stream():
    layer = mp.nn.Linear(1, 1, generator=0)
    # with two fresh rng(0) streams the weight and bias would start from the same uniform
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (1, 1))
    b = rng.uniform(-1, 1, 1)
    assert np.allclose(layer.weight.numpy(), w) and np.allclose(layer.bias.numpy(), b)


def test_dataloader_seed_still_wins_and_conflicts_are_errors():
    a = [y.numpy().tolist() for _, y in DataLoader(_dataset(), 5, shuffle=True, seed=3)]
    mp.manual_seed(99)
    b = [y.numpy().tolist() for _, y in DataLoader(_dataset(), 5, shuffle=True, seed=3)]
    assert a == b
    with pytest.raises(ValueError, match="seed or generator, not both"):
        DataLoader(_dataset(), 5, seed=1, generator=2)
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            DataLoader(_dataset(), 5, seed=bad)


@pytest.mark.parametrize("name", ["LeNet5", "LeNet5Classic"])
def test_models_built_without_a_seed_follow_manual_seed(name):
    from minipool import models
    cls = getattr(models, name)
    mp.manual_seed(4)
    a = cls().state_dict()
    mp.manual_seed(4)
    b = cls().state_dict()
    mp.manual_seed(5)
    c = cls().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
