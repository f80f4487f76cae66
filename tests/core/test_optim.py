"""Optimisers and learning-rate schedules.

Trajectories are compared with PyTorch step by step (float64 to rounding,
float32 to a few ulps) on shared random gradients; schedules are compared rate
by rate; state_dict round-trips must resume bit-identically.  Without torch,
hand-derived first steps still check the formulas.
"""
import math
import warnings

import numpy as np
import pytest

import minipool as mp
from minipool import optim
from minipool.nn import Parameter
from tests.core.optim_helpers import assert_resumes_bit_identically, gradient_sequence, make_params, run

OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "sgd_dampening_wd": ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    "sgd_nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    "sgd_maximize": ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam_wd_betas": ("Adam", dict(lr=0.02, betas=(0.5, 0.99), eps=1e-6, weight_decay=0.1)),
    "adam_amsgrad": ("Adam", dict(lr=0.01, amsgrad=True)),
    "adamw": ("AdamW", dict(lr=0.01)),
    "adamw_wd": ("AdamW", dict(lr=0.03, weight_decay=0.5, betas=(0.8, 0.9))),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_trajectory_matches_torch(name, dtype):
    torch = pytest.importorskip("torch")
    cls, kwargs = OPTIMIZERS[name]
    init, grads = make_params(dtype), gradient_sequence(12, dtype)
    skip = {(3, 1), (4, 1), (7, 0)}  # parameters without a gradient are left alone, as in torch
    ours, _ = run(None, lambda p: getattr(optim, cls)(p, **kwargs), init, grads, skip=skip)
    theirs, _ = run(torch, lambda p: getattr(torch.optim, cls)(p, **kwargs), init, grads, skip=skip)
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for pa, pb in zip(a, b):
            assert pa.dtype == dtype
            np.testing.assert_allclose(pa, pb, rtol=rtol, atol=rtol * np.abs(pb).max(),
                                       err_msg=f"{name} step {step}")


SCHEDULES = {
    "step": ("StepLR", dict(step_size=3, gamma=0.5)),
    "cosine": ("CosineAnnealingLR", dict(T_max=7, eta_min=1e-3)),  # runs past T_max: rises again
    "cosine_zero": ("CosineAnnealingLR", dict(T_max=4)),
    "onecycle": ("OneCycleLR", dict(max_lr=1.0, total_steps=20)),
    "onecycle_linear3": ("OneCycleLR", dict(max_lr=0.5, total_steps=20, three_phase=True,
                                            anneal_strategy="linear", pct_start=0.25)),
    "onecycle_epochs": ("OneCycleLR", dict(max_lr=0.3, epochs=4, steps_per_epoch=5, div_factor=10.0,
                                           final_div_factor=100.0, cycle_momentum=False)),
}


@pytest.mark.parametrize("opt_name", ["sgd_momentum", "adam"])
@pytest.mark.parametrize("sched_name", list(SCHEDULES))
def test_schedules_match_torch(sched_name, opt_name):
    torch = pytest.importorskip("torch")
    cls, kwargs = OPTIMIZERS[opt_name]
    sched_cls, sched_kwargs = SCHEDULES[sched_name]
    init, grads = make_params(np.float64), gradient_sequence(20 if "onecycle" in sched_name else 16, np.float64)
    ours, our_lrs = run(None, lambda p: getattr(optim, cls)(p, **kwargs), init, grads,
                                 lambda o: getattr(optim.lr_scheduler, sched_cls)(o, **sched_kwargs))
    theirs, their_lrs = run(torch, lambda p: getattr(torch.optim, cls)(p, **kwargs), init, grads,
                                  lambda o: getattr(torch.optim.lr_scheduler, sched_cls)(o, **sched_kwargs))
    np.testing.assert_allclose(np.array(our_lrs), np.array(their_lrs), rtol=1e-14, atol=1e-17)
    for a, b in zip(ours, theirs):
        for pa, pb in zip(a, b):
            np.testing.assert_allclose(pa, pb, rtol=1e-12, atol=1e-13)


def test_onecycle_sets_momentum_and_betas_like_torch():
    torch = pytest.importorskip("torch")
    for cls in ("SGD", "Adam"):
        kwargs = dict(lr=0.1, momentum=0.9) if cls == "SGD" else dict(lr=0.1)
        ours = getattr(optim, cls)([Parameter(np.zeros(2))], **kwargs)
        theirs = getattr(torch.optim, cls)([torch.zeros(2, requires_grad=True)], **kwargs)
        s1 = optim.lr_scheduler.OneCycleLR(ours, max_lr=1.0, total_steps=10)
        s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=1.0, total_steps=10)
        key = "momentum" if cls == "SGD" else "betas"
        for _ in range(10):
            got, want = ours.param_groups[0][key], theirs.param_groups[0][key]
            assert got == pytest.approx(want, rel=1e-14)
            for o in (ours, theirs):
                o.step()
            s1.step()
            s2.step()


# ------------------------------------------------------------------ without torch
def test_first_steps_by_hand():
    g = np.array([0.5, -2.0, 0.0, 4.0])
    p0 = np.array([1.0, 1.0, 1.0, 1.0])
    w = Parameter(p0.copy())
    opt = optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(2):
        w.grad = mp.tensor(g)
        opt.step()
    d1 = g + 0.01 * p0
    p1 = p0 - 0.1 * d1
    b2 = 0.9 * d1 + (g + 0.01 * p1)
    np.testing.assert_allclose(w.numpy(), p1 - 0.1 * b2, rtol=1e-15)

    # Adam's bias-corrected first step is lr * g / (|g| + eps): about lr against the sign of g
    w = Parameter(p0.copy())
    opt = optim.Adam([w], lr=0.01, eps=1e-3)
    w.grad = mp.tensor(g)
    opt.step()
    np.testing.assert_allclose(w.numpy(), p0 - 0.01 * g / (np.abs(g) + 1e-3), rtol=1e-14)

    # AdamW decays first, then takes the Adam step
    w = Parameter(p0.copy())
    opt = optim.AdamW([w], lr=0.01, eps=1e-3, weight_decay=0.5)
    w.grad = mp.tensor(g)
    opt.step()
    np.testing.assert_allclose(w.numpy(), p0 * (1 - 0.01 * 0.5) - 0.01 * g / (np.abs(g) + 1e-3), rtol=1e-14)


def test_schedules_by_hand():
    def rates(make_sched, steps):
        opt = optim.SGD([Parameter(np.zeros(1))], lr=1.0, momentum=0.9)
        sched = make_sched(opt)
        out = [opt.param_groups[0]["lr"]]
        for _ in range(steps):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr()[0])
        return np.array(out)

    np.testing.assert_allclose(rates(lambda o: optim.lr_scheduler.StepLR(o, 2, 0.1), 5),
                               [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-15)
    t = np.arange(9)
    closed = 0.1 + 0.9 * (1 + np.cos(np.pi * t / 8)) / 2
    np.testing.assert_allclose(rates(lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 8, 0.1), 8), closed,
                               rtol=1e-13)
    # 10 steps, peak at step 4 = pct_start * total_steps - 1, the minimum at the last step (9)
    one = rates(lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=2.0, total_steps=10, pct_start=0.5), 9)
    assert one[0] == pytest.approx(2.0 / 25) and one[np.argmax(one)] == pytest.approx(2.0)
    assert np.argmax(one) == 4 and one[-1] == pytest.approx(2.0 / 25 / 1e4)
    assert (np.diff(one[:5]) > 0).all() and (np.diff(one[4:]) < 0).all()


def test_updates_are_in_place_and_record_no_graph():
    w = Parameter(np.ones((3, 3), np.float32))
    buffer = w.numpy()
    opt = optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    assert w.numpy() is buffer and w.dtype == np.float32 and w.is_leaf
    assert not np.array_equal(buffer, 1)
    opt.zero_grad()
    assert w.grad is None
    (w * w).sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.numpy(), 0)


def test_closure_and_param_groups():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(3))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.9

    def closure():
        opt.zero_grad()
        loss = (a * a).sum() + (b * b).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_allclose(a.numpy(), 1 - 0.1 * 2)
    np.testing.assert_allclose(b.numpy(), 1 - 0.5 * 2)
    c = Parameter(np.ones(1))
    opt.add_param_group({"params": c, "lr": 0.2})
    assert opt.param_groups[2]["params"] == [c] and opt.param_groups[2]["momentum"] == 0.9


# ------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("cls,kwargs,sched", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), ("StepLR", dict(step_size=2))),
    ("Adam", dict(lr=0.01, amsgrad=True), ("CosineAnnealingLR", dict(T_max=5))),
    ("AdamW", dict(lr=0.01), ("OneCycleLR", dict(max_lr=0.05, total_steps=12))),
])
def test_state_dict_resumes_bit_identically(cls, kwargs, sched):
    init, grads = make_params(np.float32), gradient_sequence(12, np.float32)
    make_opt = lambda p: getattr(optim, cls)(p, **kwargs)  # noqa: E731
    make_sched = lambda o: getattr(optim.lr_scheduler, sched[0])(o, **sched[1])  # noqa: E731
    assert_resumes_bit_identically(make_opt, make_sched, init, grads)


def test_state_dict_layout_and_validation():
    a, b = Parameter(np.ones(2)), Parameter(np.ones((2, 2)))
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = mp.tensor(np.ones(2))
    opt.step()
    sd = opt.state_dict()
    assert list(sd["state"]) == [0] and list(sd["state"][0]) == ["momentum_buffer"]
    assert sd["param_groups"][0]["params"] == [0, 1] and sd["param_groups"][0]["lr"] == 0.1
    other = optim.SGD([a], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="parameters"):
        other.load_state_dict(sd)
    swapped = optim.SGD([b, a], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="shape"):
        swapped.load_state_dict(sd)
    with pytest.raises(ValueError, match="groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-1e-3), "lr must be >= 0"),  # lr=0 is allowed, as in PyTorch
    (lambda p: optim.SGD(p, lr=-1.0), "lr"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1.0), "weight_decay"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD(p, lr="fast"), "lr"),
    (lambda p: optim.Adam(p, lr=-1e-3), "lr must be >= 0"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: optim.Adam(p, betas=0.9), "betas"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), "weight_decay"),
    (lambda p: optim.SGD([], lr=0.1), "empty"),
    (lambda p: optim.SGD(p + p, lr=0.1), "more than once"),
    (lambda p: optim.SGD([{"params": p, "lr": -1.0}], lr=0.1), "lr"),
])
def test_optimizer_arguments_are_validated(make, match):
    with pytest.raises(ValueError, match=match):
        make([Parameter(np.ones(2))])


def test_optimizer_type_errors():
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(Parameter(np.ones(2)), lr=0.1)
    with pytest.raises(TypeError, match="not a Tensor"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="leaf"):
        optim.SGD([Parameter(np.ones(2)) * 2], lr=0.1)


def test_scheduler_arguments_are_validated():
    opt = optim.SGD([Parameter(np.ones(2))], lr=0.1, momentum=0.9)
    L = optim.lr_scheduler
    for make, match in [
        (lambda: L.StepLR(opt, step_size=0), "step_size"),
        (lambda: L.StepLR(opt, step_size=2, gamma=-1.0), "gamma"),
        (lambda: L.CosineAnnealingLR(opt, T_max=0), "T_max"),
        (lambda: L.CosineAnnealingLR(opt, T_max=3, eta_min=-1.0), "eta_min"),
        (lambda: L.OneCycleLR(opt, max_lr=1.0), "total_steps"),
        (lambda: L.OneCycleLR(opt, max_lr=1.0, total_steps=0), "total_steps"),
        (lambda: L.OneCycleLR(opt, max_lr=1.0, total_steps=5, pct_start=1.5), "pct_start"),
        (lambda: L.OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="exp"), "anneal_strategy"),
        (lambda: L.OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=5), "max_lr"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(TypeError, match="Optimizer"):
        L.StepLR(object(), step_size=1)
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            sched.step()
        with pytest.raises(ValueError, match="total_steps is 3"):
            sched.step()


def test_scheduler_warns_when_stepped_before_the_optimizer():
    opt = optim.SGD([Parameter(np.ones(2))], lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1)
    with pytest.warns(UserWarning, match="before optimizer.step"):
        sched.step()
    assert math.isclose(opt.param_groups[0]["lr"], 0.01)
