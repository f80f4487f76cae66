"""Three PyTorch habits an audit against torch 2.13 found broken, checked side by side with torch:
default_collate's dtype for mixed plain numbers, the DataLoader's shuffle drawn per epoch
(so a loader built before mp.manual_seed follows it), and optimisers accepting lr=0."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minipool as mp
from minipool.utils.data import DataLoader, default_collate
from tests.helpers import CHECKOUT, subprocess_env

torch = pytest.importorskip("torch")
tdata = pytest.importorskip("torch.utils.data")


def _plain(batch):
    """A collated Tensor (minipool or torch) as (dtype name, values)."""
    if isinstance(batch, torch.Tensor):
        return str(batch.numpy().dtype), batch.tolist()
    return str(batch.dtype), batch.tolist()


# ------------------------------------------------------------ 1. default_collate
PYTHON_MIXES = [[True, 2], [3, 4.0], [0, 0.7], [0.5, 1], [True, False], [2, True], [False, 1.5],
                [0.5, True], [True, 1.5, 2], [1, 2 ** 40], [2 ** 62 + 1, 0.5], [0.5, 2 ** 70]]

NUMPY_MIXES = [[np.int32(1), 2.5], [np.float32(1), 2], [np.float32(1.5), np.float64(2.5)],
               [np.int64(1), np.float64(0.5)], [1, np.float32(0.5)], [1.5, np.int64(2)],
               [True, np.int64(3)], [np.int32(5), True], [np.True_, np.False_], [np.True_, 1.5],
               [0.5, np.True_], [np.float16(1), 2], [np.float16(1), 2.5], [np.uint8(1), np.int8(2)],
               [np.uint8(3), 300], [np.int32(1), 2 ** 40], [np.int32(1), np.int32(2)]]


def test_collate_of_python_numbers_matches_torch_dtype_and_values():
    # the audit's repros first: [0, 0.7] was int64 [0, 0], [True, 2] bool [True, True]
    for batch in PYTHON_MIXES:
        assert _plain(default_collate(batch)) == _plain(tdata.default_collate(batch)), batch


def test_collate_of_numpy_scalars_matches_torch():
    for batch in NUMPY_MIXES:
        assert _plain(default_collate(batch)) == _plain(tdata.default_collate(batch)), batch
    # torch raises on a NumPy bool beside a Python int; minipool gives int64, no truncation
    for batch in ([1, np.True_], [np.True_, 2]):
        with pytest.raises(TypeError):
            tdata.default_collate(batch)
        assert _plain(default_collate(batch)) == ("int64", [int(v) for v in batch])


def test_collate_of_samples_keeps_a_float_target_that_follows_an_int():
    x0, x1 = np.zeros(3, np.float32), np.ones(3, np.float32)
    ours = default_collate([(x0, 0), (x1, 0.7)])
    theirs = tdata.default_collate([(x0, 0), (x1, 0.7)])
    assert _plain(ours[1]) == _plain(theirs[1]) == ("float32", [0.0, pytest.approx(0.7)])
    assert _plain(ours[0]) == _plain(theirs[0])
    ours = default_collate([{"y": 1}, {"y": 2.5}])
    assert _plain(ours["y"]) == _plain(tdata.default_collate([{"y": 1}, {"y": 2.5}])["y"])


def test_collate_int_and_float_follow_the_default_dtype():
    before_mp, before_torch = mp.get_default_dtype(), torch.get_default_dtype()
    mp.set_default_dtype(mp.float64)
    torch.set_default_dtype(torch.float64)
    try:
        for batch in ([0, 0.7], [True, 1.5], [np.int32(1), 2.5]):
            assert _plain(default_collate(batch)) == _plain(tdata.default_collate(batch)), batch
    finally:
        mp.set_default_dtype(before_mp)
        torch.set_default_dtype(before_torch)


def test_collate_refuses_a_number_batch_holding_something_else():
    for batch in ([1, "a"], [0.5, None], [1, [2]]):
        with pytest.raises((TypeError, RuntimeError)):
            tdata.default_collate(batch)
        with pytest.raises(TypeError, match="mixes numbers and"):
            default_collate(batch)


# ------------------------------------------------------------ 2. DataLoader shuffle per epoch
_SEED_AFTER_CONSTRUCTION = textwrap.dedent("""
    import json
    import minipool as mp
    import torch
    from minipool.utils.data import DataLoader
    from torch.utils.data import DataLoader as TorchLoader

    ours = DataLoader(range(10), batch_size=10, shuffle=True)
    theirs = TorchLoader(range(10), batch_size=10, shuffle=True)
    mp.manual_seed(0)
    torch.manual_seed(0)
    print(json.dumps({"ours": [next(iter(ours)).tolist() for _ in range(2)],
                      "theirs": [next(iter(theirs)).tolist() for _ in range(2)]}))
""")


def _epochs_in_a_new_process():
    done = subprocess.run([sys.executable, "-c", _SEED_AFTER_CONSTRUCTION], capture_output=True,
                          text=True, timeout=120, cwd=CHECKOUT, env=subprocess_env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loader_built_before_manual_seed_shuffles_the_same_in_every_process():
    first, second = _epochs_in_a_new_process(), _epochs_in_a_new_process()
    assert first["theirs"] == second["theirs"]  # torch's habit
    assert first["ours"] == second["ours"]
    for epochs in (first["ours"], first["theirs"]):
        assert epochs[0] != epochs[1]  # successive epochs differ
        assert all(sorted(order) == list(range(10)) for order in epochs)


def test_reseeding_before_iter_repeats_the_epoch_as_torch():
    ours = DataLoader(range(10), batch_size=10, shuffle=True)
    theirs = tdata.DataLoader(range(10), batch_size=10, shuffle=True)
    for seed_all, loader in ((mp.manual_seed, ours), (torch.manual_seed, theirs)):
        seed_all(3)
        a, b = next(iter(loader)).tolist(), next(iter(loader)).tolist()
        seed_all(3)
        assert next(iter(loader)).tolist() == a and a != b


def test_loader_given_a_generator_draws_from_it_per_epoch_as_torch():
    for make_gen, loader_cls in ((mp.Generator, DataLoader), (torch.Generator, tdata.DataLoader)):
        g = make_gen()
        loader = loader_cls(range(10), batch_size=10, shuffle=True, generator=g)
        g.manual_seed(1)  # after construction: still decides every epoch
        a, b = next(iter(loader)).tolist(), next(iter(loader)).tolist()
        g.manual_seed(1)
        assert next(iter(loader)).tolist() == a and a != b, loader_cls


def test_the_shared_generator_is_drawn_at_iter_not_at_construction():
    for seed_all, rand, loader_cls in ((mp.manual_seed, mp.rand, DataLoader),
                                       (torch.manual_seed, torch.rand, tdata.DataLoader)):
        seed_all(0)
        plain = rand(3).tolist()
        seed_all(0)
        loader = loader_cls(range(10), batch_size=5, shuffle=True)
        assert rand(3).tolist() == plain, loader_cls  # building the loader draws nothing
        seed_all(0)
        next(iter(loader))
        assert rand(3).tolist() != plain, loader_cls  # starting an epoch does


# ------------------------------------------------------------ 3. lr = 0 and a Tensor lr
OPTIMIZERS = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
              "ASGD"]


def _step(lib, name, make_lr, where):
    """One step of ``name`` on p = [1, -2] with loss sum(p * p); lr=make_lr() given in the
    constructor, in a parameter group or through add_param_group."""
    p = lib.nn.Parameter(lib.tensor([1.0, -2.0]))
    cls = getattr(lib.optim, name)
    if where == "constructor":
        opt = cls([p], lr=make_lr(), weight_decay=0.1)
    elif where == "group":
        opt = cls([{"params": [p], "lr": make_lr()}], lr=0.1, weight_decay=0.1)
    else:
        other = lib.nn.Parameter(lib.tensor([0.5]))
        opt = cls([other], lr=0.1, weight_decay=0.1)
        opt.add_param_group({"params": [p], "lr": make_lr()})
    (p * p).sum().backward()
    opt.step()
    return p.detach().numpy().copy()


@pytest.mark.parametrize("where", ["constructor", "group", "add_param_group"])
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_lr_zero_is_accepted_and_freezes_as_torch(name, where):
    ours = _step(mp, name, lambda: 0.0, where)
    theirs = _step(torch, name, lambda: 0.0, where)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, [1.0, -2.0])


def test_every_optimizer_takes_lr_zero_and_refuses_a_negative_lr_by_name():
    for name in OPTIMIZERS:
        p = mp.nn.Parameter(mp.ones(2))
        assert getattr(mp.optim, name)([p], lr=0).param_groups[0]["lr"] == 0
        with pytest.raises(ValueError):
            getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], lr=-0.1)
        with pytest.raises(ValueError, match=f"{name}: lr must be >= 0, got -0.1"):
            getattr(mp.optim, name)([p], lr=-0.1)
        with pytest.raises(ValueError, match=f"{name}: lr must be >= 0"):
            getattr(mp.optim, name)([{"params": [p], "lr": -1}], lr=0.1)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_0d_float_tensor_lr_is_used_as_its_value_as_torch(name):
    for where in ("constructor", "group", "add_param_group"):
        ours = _step(mp, name, lambda: mp.tensor(0.01), where)
        theirs = _step(torch, name, lambda: torch.tensor(0.01), where)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7, err_msg=f"{name} {where}")
    p = mp.nn.Parameter(mp.ones(2))
    assert getattr(mp.optim, name)([p], lr=mp.tensor(0.0)).param_groups[0]["lr"] == 0.0
    for bad in (mp.tensor([0.01]), mp.tensor(1)):  # torch takes these too; minipool asks for 0-d
        with pytest.raises(ValueError, match=f"{name}: lr must be a real number or a 0-d float "
                                             f"Tensor"):
            getattr(mp.optim, name)([p], lr=bad)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        getattr(mp.optim, name)([p], lr=mp.tensor(-0.1))


@pytest.mark.parametrize("lib", ["minipool", "torch"])
def test_an_optimizer_takes_named_parameters(lib):
    T = mp if lib == "minipool" else torch
    layer = T.nn.Linear(2, 2)
    opt = T.optim.SGD(layer.named_parameters(), lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert [p is q for p, q in zip(opt.param_groups[0]["params"], layer.parameters())] == [True, True]
    layer(T.ones(1, 2)).sum().backward()
    opt.step()
    state = opt.state_dict()
    assert state["param_groups"][0]["param_names"] == ["weight", "bias"]
    again = T.optim.SGD(layer.named_parameters(), lr=0.1, momentum=0.9)
    again.load_state_dict(state)
    with pytest.raises(ValueError):
        T.optim.SGD([("weight", layer.weight), layer.bias], lr=0.1)
    grouped = T.optim.Adam([{"params": layer.named_parameters(), "lr": 0.01}])
    assert grouped.param_groups[0]["param_names"] == ["weight", "bias"]
