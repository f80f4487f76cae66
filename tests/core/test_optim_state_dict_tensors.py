"""optimizer.state_dict() holds Tensors where PyTorch's does (buffers and 0-d counters), and
load_state_dict takes Tensors, NumPy arrays or plain numbers: checked against torch.optim."""
import numpy as np
import pytest
import torch

import minipool as mp
from minipool import optim
from minipool.nn import Parameter

SETTINGS = {
    "SGD": dict(lr=0.1, momentum=0.9), "Adam": dict(amsgrad=True), "AdamW": dict(), "Adagrad": dict(),
    "Adadelta": dict(), "Adamax": dict(), "NAdam": dict(), "RAdam": dict(), "ASGD": dict(t0=1),
    "RMSprop": dict(momentum=0.5, centered=True),
}
INIT = [np.array([[0.5, -1.0, 2.0], [0.1, 0.0, -0.3]]), np.array([0.7, -0.2])]


def _grads(step):
    rng = np.random.default_rng(step)
    return [rng.standard_normal(a.shape) for a in INIT]


def _steps(opt, params, lib, first, last, dtype):
    for step in range(first, last):
        for p, g in zip(params, _grads(step)):
            p.grad = lib.tensor(g.astype(dtype))
        opt.step()


def _pair(name, dtype):
    ours_p = [Parameter(mp.tensor(a.astype(dtype))) for a in INIT]
    theirs_p = [torch.tensor(a.astype(dtype), requires_grad=True) for a in INIT]
    return (ours_p, getattr(optim, name)(ours_p, **SETTINGS[name]),
            theirs_p, getattr(torch.optim, name)(theirs_p, **SETTINGS[name]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_state_dict_entries_are_tensors_like_torchs(name, dtype):
    ours_p, ours, theirs_p, theirs = _pair(name, dtype)
    _steps(ours, ours_p, mp, 0, 3, dtype)
    _steps(theirs, theirs_p, torch, 0, 3, dtype)
    a, b = ours.state_dict()["state"], theirs.state_dict()["state"]
    assert sorted(a) == sorted(b) == [0, 1]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for index in a:
        assert set(a[index]) == set(b[index]), name
        for key, value in a[index].items():
            want = b[index][key]
            assert isinstance(value, mp.Tensor), (name, key, type(value))
            assert value.shape == tuple(want.shape), (name, key)
            assert str(value.dtype) == str(want.dtype).replace("torch.", ""), (name, key)
            np.testing.assert_allclose(value.numpy(), want.numpy(), rtol=rtol, atol=1e-7,
                                       err_msg=f"{name} {key}")


def test_saved_tensors_are_copies():
    p = Parameter(mp.ones(3))
    opt = optim.Adam([p])
    p.grad = mp.ones(3)
    opt.step()
    saved = opt.state_dict()["state"][0]
    before = saved["exp_avg"].numpy().copy()
    opt.step()
    np.testing.assert_array_equal(saved["exp_avg"].numpy(), before)
    assert saved["step"].item() == 1 and opt.state[p]["step"] == 2


@pytest.mark.parametrize("form", ["ours", "torch as arrays", "torch tensors converted", "plain numbers"])
@pytest.mark.parametrize("name", ["Adam", "NAdam", "ASGD", "RMSprop", "SGD"])
def test_loading_either_form_continues_torchs_trajectory(name, form):
    dtype = np.float64
    ours_p, ours, theirs_p, theirs = _pair(name, dtype)
    _steps(ours, ours_p, mp, 0, 4, dtype)
    _steps(theirs, theirs_p, torch, 0, 4, dtype)
    saved = theirs.state_dict()
    if form == "ours":
        state = ours.state_dict()
    else:
        def convert(v):
            if not isinstance(v, torch.Tensor):
                return v
            if form == "torch as arrays":
                return v.numpy().copy()
            if form == "plain numbers" and v.ndim == 0:
                return v.item()
            return mp.tensor(v.numpy())
        state = {"state": {i: {k: convert(v) for k, v in s.items()} for i, s in saved["state"].items()},
                 "param_groups": saved["param_groups"]}
    resumed_p = [Parameter(mp.tensor(p.detach().numpy().copy())) for p in theirs_p]
    resumed = getattr(optim, name)(resumed_p, **SETTINGS[name])
    resumed.load_state_dict(state)
    for p, entry in resumed.state.items():  # Tensors as torch's state, copies of what was loaded
        for k, v in entry.items():
            assert type(v) is mp.Tensor, (k, type(v))
            want = mp.get_default_dtype() if v.ndim == 0 and p.ndim else p.dtype
            assert v.dtype == want, (k, v.dtype)
            for saved_entry in state["state"].values():
                given = saved_entry.get(k)
                if isinstance(given, (mp.Tensor, torch.Tensor)):
                    assert not np.shares_memory(v.numpy(), given.numpy()), k
    _steps(resumed, resumed_p, mp, 4, 8, dtype)
    _steps(theirs, theirs_p, torch, 4, 8, dtype)
    for a, b in zip(resumed_p, theirs_p):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-11, atol=1e-13)


def test_a_buffer_of_the_wrong_shape_is_named():
    p = Parameter(mp.ones(3))
    opt = optim.Adam([p])
    state = {"state": {0: {"step": mp.tensor(1.0), "exp_avg": mp.zeros(4), "exp_avg_sq": mp.zeros(3)}},
             "param_groups": opt.state_dict()["param_groups"]}
    with pytest.raises(ValueError, match="state 'exp_avg' of parameter 0 has shape \\(4,\\)"):
        opt.load_state_dict(state)


def test_state_dict_survives_save_and_load(tmp_path):
    p = Parameter(mp.ones(3))
    opt = optim.Adam([p])
    p.grad = mp.ones(3)
    opt.step()
    mp.save(opt.state_dict(), tmp_path / "opt.pt")
    loaded = mp.load(tmp_path / "opt.pt")
    assert isinstance(loaded["state"][0]["exp_avg"], mp.Tensor) and loaded["state"][0]["step"].item() == 1
    again = optim.Adam([Parameter(mp.ones(3))])
    again.load_state_dict(loaded)
    assert list(again.state.values())[0]["step"] == 1
