"""RMSprop, MultiStepLR, ExponentialLR, LambdaLR, ReduceLROnPlateau, clip_grad_norm_ and
clip_grad_value_.

Trajectories and rates are compared with torch.optim step by step on the same
parameters and gradients (float64 to rounding over many steps, float32 to a few
ulps); an independent NumPy RMSprop and hand-derived schedules check the
formulas without torch; state_dict round trips resume bit-identically.
"""
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
from minipool import optim
from minipool.nn import Parameter
from minipool.nn.utils import clip_grad_norm_, clip_grad_value_
from tests.core.optim_helpers import SHAPES, assert_resumes_bit_identically, gradient_sequence, make_params, run

RMSPROP = {
    "default": dict(),
    "lr_alpha": dict(lr=0.003, alpha=0.9),
    "momentum": dict(lr=0.01, momentum=0.9),
    "centered": dict(lr=0.01, centered=True),
    "centered_momentum_wd": dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.1, eps=1e-6),
    "weight_decay": dict(lr=0.01, weight_decay=0.3),
    "maximize": dict(lr=0.01, momentum=0.3, maximize=True),
    "alpha_zero": dict(lr=0.01, alpha=0.0, eps=1e-3),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(RMSPROP))
def test_rmsprop_trajectory_matches_torch(name, dtype):
    torch = pytest.importorskip("torch")
    kwargs = RMSPROP[name]
    init, grads = make_params(dtype), gradient_sequence(60, dtype, varied_scale=True)
    skip = {(3, 1), (4, 1), (10, 0)}
    ours, _ = run(None, lambda p: optim.RMSprop(p, **kwargs), init, grads, skip=skip)
    theirs, _ = run(torch, lambda p: torch.optim.RMSprop(p, **kwargs), init, grads, skip=skip)
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (2e-5, 1e-6)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            assert x.dtype == dtype
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {step}")


def reference_rmsprop(p, grads, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                      centered=False):
    """Element by element, from the update rule as written in PyTorch's documentation."""
    p = [float(v) for v in p]
    v = [0.0] * len(p)
    gavg = [0.0] * len(p)
    buf = [0.0] * len(p)
    for g_all in grads:
        for i, g in enumerate(g_all):
            g = float(g) + weight_decay * p[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            denom = v[i]
            if centered:
                gavg[i] = alpha * gavg[i] + (1 - alpha) * g
                denom = v[i] - gavg[i] ** 2
            denom = math.sqrt(denom) + eps
            if momentum > 0:
                buf[i] = momentum * buf[i] + g / denom
                p[i] -= lr * buf[i]
            else:
                p[i] -= lr * g / denom
    return np.array(p)


@pytest.mark.parametrize("kwargs", [dict(), dict(momentum=0.8, weight_decay=0.05),
                                    dict(centered=True, alpha=0.7, lr=0.1)])
def test_rmsprop_matches_elementwise_reference(kwargs):
    r = np.random.default_rng(4)
    start = r.standard_normal(6)
    grads = [r.standard_normal(6) for _ in range(25)]
    w = Parameter(start.copy())
    opt = optim.RMSprop([w], **kwargs)
    for g in grads:
        w.grad = mp.tensor(g)
        opt.step()
    np.testing.assert_allclose(w.numpy(), reference_rmsprop(start, grads, **kwargs), rtol=1e-12, atol=1e-14)


def test_rmsprop_state_dict_layout_and_resume():
    init, grads = make_params(np.float32), gradient_sequence(10, np.float32, varied_scale=True)
    kwargs = dict(lr=0.01, momentum=0.9, centered=True)
    straight, _ = run(None, lambda p: optim.RMSprop(p, **kwargs), init, grads)
    params = [Parameter(a.copy()) for a in init]
    opt = optim.RMSprop(params, **kwargs)
    for gs in grads[:4]:
        for p, g in zip(params, gs):
            p.grad = mp.tensor(g)
        opt.step()
    state = opt.state_dict()
    assert sorted(state["state"][0]) == ["grad_avg", "momentum_buffer", "square_avg", "step"]
    assert state["state"][0]["step"] == 4
    group = state["param_groups"][0]
    assert {k: group[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")} == \
        dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0.9, centered=True)
    saved = pickle.dumps((state, [p.numpy().copy() for p in params]))
    opt_state, values = pickle.loads(saved)
    fresh = [Parameter(v) for v in values]
    opt2 = optim.RMSprop(fresh, **kwargs)
    opt2.load_state_dict(opt_state)
    for step, gs in enumerate(grads[4:], start=4):
        for p, g in zip(fresh, gs):
            p.grad = mp.tensor(g)
        opt2.step()
        for p, want in zip(fresh, straight[step]):
            np.testing.assert_array_equal(p.numpy(), want)
    plain = optim.RMSprop([Parameter(mp.zeros(2))])
    plain.param_groups[0]["params"][0].grad = mp.ones(2)
    plain.step()
    assert sorted(plain.state_dict()["state"][0]) == ["square_avg", "step"]


@pytest.mark.parametrize("kwargs,words", [
    (dict(lr=-0.1), "lr"), (dict(alpha=-0.5), "alpha"), (dict(eps=-1.0), "eps"),
    (dict(weight_decay=-1.0), "weight_decay"), (dict(momentum=-0.1), "momentum"),
    (dict(lr="fast"), "lr"), (dict(alpha=float("nan")), "alpha"),
])
def test_rmsprop_arguments_are_validated(kwargs, words):
    with pytest.raises(ValueError, match=words):
        optim.RMSprop([Parameter(mp.zeros(2))], **kwargs)


# --------------------------------------------------------------------------- schedules
SCHEDULES = {
    "multistep": ("MultiStepLR", dict(milestones=[2, 5, 5, 9, 30], gamma=0.5)),
    "multistep_unsorted": ("MultiStepLR", dict(milestones=[7, 1], gamma=0.3)),
    "exponential": ("ExponentialLR", dict(gamma=0.9)),
    "lambda": ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e + 0.01 * (e % 3))),
}


@pytest.mark.parametrize("opt_name", ["SGD", "RMSprop"])
@pytest.mark.parametrize("sched", list(SCHEDULES))
def test_schedules_match_torch(sched, opt_name):
    torch = pytest.importorskip("torch")
    cls, kwargs = SCHEDULES[sched]
    init, grads = make_params(np.float64), gradient_sequence(25, np.float64, varied_scale=True)
    opt_kwargs = dict(lr=0.05, momentum=0.5)
    ours, our_lrs = run(None, lambda p: getattr(optim, opt_name)(p, **opt_kwargs), init, grads,
                        lambda o: getattr(optim.lr_scheduler, cls)(o, **kwargs))
    theirs, their_lrs = run(torch, lambda p: getattr(torch.optim, opt_name)(p, **opt_kwargs), init, grads,
                            lambda o: getattr(torch.optim.lr_scheduler, cls)(o, **kwargs))
    np.testing.assert_allclose(our_lrs, their_lrs, rtol=1e-15, atol=0)
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


def test_lambda_lr_one_function_per_group_matches_torch():
    torch = pytest.importorskip("torch")
    fns = [lambda e: 1.0 / (1 + e), lambda e: 0.5 ** (e // 3)]

    def rates(lib_optim, make_param):
        groups = [{"params": [make_param()]}, {"params": [make_param()], "lr": 0.3}]
        opt = lib_optim.SGD(groups, lr=0.1)
        sched = lib_optim.lr_scheduler.LambdaLR(opt, fns)
        out = [sched.get_last_lr()]
        for _ in range(10):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr())
        return out

    ours = rates(optim, lambda: Parameter(mp.zeros(2)))
    theirs = rates(torch.optim, lambda: torch.zeros(2, requires_grad=True))
    np.testing.assert_allclose(ours, theirs, rtol=1e-15)


def test_schedules_by_hand():
    opt = optim.SGD([Parameter(mp.zeros(1))], lr=1.0)
    sched = optim.MultiStepLR(opt, milestones=[3, 1, 3], gamma=0.1)
    got = []
    for _ in range(5):
        opt.step()
        sched.step()
        got.append(sched.get_last_lr()[0])
    np.testing.assert_allclose(got, [0.1, 0.1, 0.001, 0.001, 0.001], rtol=1e-15)
    opt = optim.SGD([Parameter(mp.zeros(1))], lr=2.0)
    sched = optim.ExponentialLR(opt, gamma=0.5)
    assert sched.get_last_lr() == [2.0]
    for k in range(1, 5):
        opt.step()
        sched.step()
        assert sched.get_last_lr() == [2.0 * 0.5 ** k]
    opt = optim.SGD([Parameter(mp.zeros(1))], lr=3.0)
    sched = optim.LambdaLR(opt, lambda e: e + 1)
    assert sched.get_last_lr() == [3.0]
    opt.step()
    sched.step()
    assert sched.get_last_lr() == [6.0] and opt.param_groups[0]["lr"] == 6.0


class Warmup:
    """A callable object: LambdaLR's state_dict keeps its attributes, as PyTorch."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.steps)


@pytest.mark.parametrize("cls,kwargs", [
    ("MultiStepLR", dict(milestones=[2, 6], gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.8)),
    ("LambdaLR", dict(lr_lambda=Warmup(5))),
])
def test_new_schedules_resume_from_state_dict(cls, kwargs):
    init, grads = make_params(np.float32), gradient_sequence(12, np.float32, varied_scale=True)
    make_opt = lambda p: optim.RMSprop(p, lr=0.01)  # noqa: E731
    make_sched = lambda o: getattr(optim.lr_scheduler, cls)(o, **kwargs)  # noqa: E731
    assert_resumes_bit_identically(make_opt, make_sched, init, grads)


def test_lambda_lr_state_dict_keeps_callable_objects_but_not_functions():
    opt = optim.SGD([{"params": [Parameter(mp.zeros(1))]}, {"params": [Parameter(mp.zeros(1))]}], lr=1.0)
    sched = optim.LambdaLR(opt, [Warmup(4), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"steps": 4}, None]
    pickle.dumps(state)
    other = Warmup(100)
    sched2 = optim.LambdaLR(opt, [other, lambda e: 1.0])
    sched2.load_state_dict(state)
    assert other.steps == 4


# --------------------------------------------------------------------------- ReduceLROnPlateau
PLATEAU = {
    "default": dict(),
    "patience_factor": dict(patience=2, factor=0.5),
    "max_mode": dict(mode="max", patience=1, factor=0.3),
    "abs_threshold": dict(threshold_mode="abs", threshold=0.05, patience=1),
    "cooldown": dict(patience=0, cooldown=2, factor=0.5),
    "min_lr": dict(patience=0, factor=0.2, min_lr=[0.004, 0.0]),
    "eps": dict(patience=0, factor=0.9, eps=0.004),
    "max_abs": dict(mode="max", threshold_mode="abs", threshold=0.1, patience=0, cooldown=1),
}


def _metric_sequence(seed, steps=40):
    r = np.random.default_rng(seed)
    values = 1.0 / (1 + np.arange(steps)) + r.uniform(-0.02, 0.02, steps)
    values[10:20] = values[10]  # a flat stretch: exact ties with the best
    values[25:] += 0.05
    return values.tolist()


@pytest.mark.parametrize("name", list(PLATEAU))
def test_reduce_on_plateau_matches_torch(name):
    torch = pytest.importorskip("torch")
    kwargs = PLATEAU[name]
    metrics = _metric_sequence(len(name))
    init, grads = make_params(np.float64), gradient_sequence(len(metrics), np.float64, varied_scale=True)

    def groups(params):
        return [{"params": params[:2]}, {"params": params[2:], "lr": 0.02}]

    ours, our_lrs = run(None, lambda p: optim.SGD(groups(p), lr=0.1), init, grads,
                        lambda o: optim.ReduceLROnPlateau(o, **kwargs), metrics=metrics)
    theirs, their_lrs = run(torch, lambda p: torch.optim.SGD(groups(p), lr=0.1), init, grads,
                            lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **kwargs), metrics=metrics)
    np.testing.assert_allclose(our_lrs, their_lrs, rtol=1e-15, atol=0)
    assert len({tuple(lr) for lr in our_lrs}) > 1 or name == "default"
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(metrics=st.lists(st.one_of(st.floats(-5, 5), st.sampled_from([1.0, 0.0, float("nan"), float("inf")])),
                        min_size=1, max_size=30),
       mode=st.sampled_from(["min", "max"]), threshold_mode=st.sampled_from(["rel", "abs"]),
       threshold=st.sampled_from([0.0, 1e-4, 0.1]), patience=st.integers(0, 3), cooldown=st.integers(0, 2),
       factor=st.sampled_from([0.1, 0.5, 0.9]), min_lr=st.sampled_from([0.0, 0.01]))
def test_property_reduce_on_plateau_follows_torch(metrics, mode, threshold_mode, threshold, patience, cooldown,
                                                  factor, min_lr):
    torch = pytest.importorskip("torch")
    kwargs = dict(mode=mode, threshold_mode=threshold_mode, threshold=threshold, patience=patience,
                  cooldown=cooldown, factor=factor, min_lr=min_lr)
    ours_opt = optim.SGD([Parameter(mp.zeros(1))], lr=1.0)
    ours = optim.ReduceLROnPlateau(ours_opt, **kwargs)
    theirs_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_opt, **kwargs)
    for m in metrics:
        ours_opt.step()
        theirs_opt.step()
        ours.step(m)
        theirs.step(m)
        assert ours.get_last_lr() == theirs.get_last_lr()
        assert (ours.num_bad_epochs, ours.cooldown_counter, ours.last_epoch) == \
            (theirs.num_bad_epochs, theirs.cooldown_counter, theirs.last_epoch)
        assert ours.best == theirs.best or (math.isnan(ours.best) and math.isnan(theirs.best))


def test_reduce_on_plateau_by_hand_and_state_dict():
    opt = optim.SGD([Parameter(mp.zeros(1))], lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=2, factor=0.5, cooldown=1)
    lrs = []
    for loss in [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0]:
        opt.step()
        sched.step(mp.tensor(loss))  # a 0-d Tensor works as a metric
        lrs.append(sched.get_last_lr()[0])
    # bad epochs at 3, 4, 5 -> cut after the third; one cooldown epoch; then 3 more bad
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    state = pickle.loads(pickle.dumps(sched.state_dict()))
    assert "optimizer" not in state and state["best"] == 3.0
    opt2 = optim.SGD([Parameter(mp.zeros(1))], lr=0.5)
    sched2 = optim.ReduceLROnPlateau(opt2, patience=2, factor=0.5, cooldown=1)
    sched2.load_state_dict(state)
    for loss in [3.0, 3.0, 3.0]:
        opt.step()
        opt2.step()
        sched.step(loss)
        sched2.step(loss)
        assert sched.get_last_lr() == sched2.get_last_lr()
    assert sched2.get_last_lr() == [0.25]
    with pytest.warns(UserWarning, match="deprecated"):
        sched2.step(1.0, epoch=20)
    assert sched2.last_epoch == 20


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(factor=1.0), ValueError, "factor"),
    (dict(factor=2.0), ValueError, "factor"),
    (dict(mode="minimum"), ValueError, "mode"),
    (dict(threshold_mode="relative"), ValueError, "threshold_mode"),
    (dict(patience=-1), ValueError, "patience"),
    (dict(patience=1.5), ValueError, "patience"),
    (dict(cooldown=-2), ValueError, "cooldown"),
    (dict(min_lr=[0.1, 0.2]), ValueError, "min_lr"),
    (dict(min_lr=-0.1), ValueError, "min_lr"),
    (dict(eps=-1.0), ValueError, "eps"),
])
def test_reduce_on_plateau_arguments_are_validated(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        optim.ReduceLROnPlateau(optim.SGD([Parameter(mp.zeros(1))], lr=1.0), **kwargs)


def test_schedule_arguments_are_validated():
    opt = optim.SGD([Parameter(mp.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="milestones"):
        optim.MultiStepLR(opt, milestones=[1, 2.5])
    with pytest.raises(TypeError, match="milestones"):
        optim.MultiStepLR(opt, milestones=3)
    with pytest.raises(ValueError, match="gamma"):
        optim.MultiStepLR(opt, milestones=[1], gamma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        optim.ExponentialLR(opt, gamma=0.0)
    with pytest.raises(TypeError, match="callable"):
        optim.LambdaLR(opt, 0.5)
    with pytest.raises(ValueError, match="one per parameter group"):
        optim.LambdaLR(opt, [lambda e: 1.0, lambda e: 1.0])
    with pytest.raises(TypeError, match="optimizer"):
        optim.ReduceLROnPlateau("sgd")
    with pytest.raises(TypeError, match="metrics"):
        optim.ReduceLROnPlateau(opt).step("low")
    with pytest.raises(NotImplementedError, match="step\\(metrics\\)"):
        optim.ReduceLROnPlateau(opt).get_lr()


# --------------------------------------------------------------------------- gradient clipping
def _grads_pair(torch, dtype, seed=0, scale=1.0):
    r = np.random.default_rng(seed)
    arrays = [(r.standard_normal(s) * scale).astype(dtype) for s in SHAPES]
    ours = [Parameter(np.zeros(s, dtype)) for s in SHAPES]
    theirs = [torch.zeros(s, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True) for s in SHAPES]
    for p, t, a in zip(ours, theirs, arrays):
        p.grad = mp.tensor(a.copy())
        t.grad = torch.tensor(a.copy())
    return ours, theirs, arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, -math.inf, 0])
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 1e6])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ours, theirs, _ = _grads_pair(torch, dtype)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    their_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert isinstance(total, mp.Tensor) and total.shape == () and total.dtype == dtype
    np.testing.assert_allclose(total.item(), their_total.item(), rtol=tol)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=tol, atol=1e-30)


def test_clip_grad_norm_reference_without_torch():
    r = np.random.default_rng(3)
    arrays = [r.standard_normal(s) for s in SHAPES]
    params = [Parameter(np.zeros(s)) for s in SHAPES]
    for p, a in zip(params, arrays):
        p.grad = mp.tensor(a.copy())
    params.append(Parameter(np.zeros(3)))  # no gradient: skipped, stays None
    flat = np.concatenate([a.ravel() for a in arrays])
    norm = math.sqrt(sum(v * v for v in flat))
    total = clip_grad_norm_(params, 0.5)
    assert math.isclose(total.item(), norm, rel_tol=1e-13)
    coef = 0.5 / (norm + 1e-6)
    for p, a in zip(params, arrays):
        np.testing.assert_allclose(p.grad.numpy(), a * coef, rtol=1e-13)
    assert params[-1].grad is None
    new_total = math.sqrt(sum(float(np.sum(p.grad.numpy() ** 2)) for p in params[:-1]))
    assert new_total <= 0.5
    # below max_norm: unchanged (the coefficient is clamped at 1)
    w = Parameter(np.array([0.3, 0.4]))
    w.grad = mp.tensor(np.array([0.3, 0.4]))
    assert math.isclose(clip_grad_norm_(w, 10.0).item(), 0.5)  # a single Tensor is accepted
    np.testing.assert_array_equal(w.grad.numpy(), [0.3, 0.4])
    assert clip_grad_norm_([Parameter(mp.zeros(2))], 1.0).item() == 0.0  # nothing to clip


def test_clip_grad_norm_nonfinite():
    torch = pytest.importorskip("torch")
    ours, theirs, _ = _grads_pair(torch, np.float64)
    ours[1].grad.numpy()[2] = np.nan
    theirs[1].grad[2] = float("nan")
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(ours, 1.0)
    their_total = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isnan(total.item()) and math.isnan(their_total.item())
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(np.isnan(p.grad.numpy()), np.isnan(t.grad.numpy()))
    ours, theirs, _ = _grads_pair(torch, np.float64)
    ours[0].grad.numpy()[0, 0] = np.inf
    theirs[0].grad[0, 0] = float("inf")
    total = clip_grad_norm_(ours, 1.0, norm_type=math.inf)
    their_total = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=math.inf)
    assert total.item() == their_total.item() == math.inf
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


@settings(max_examples=40, deadline=None)
@given(clip=st.floats(-2, 3), scale=st.floats(0.01, 100), seed=st.integers(0, 1000))
def test_property_clip_grad_value_matches_torch(clip, scale, seed):
    torch = pytest.importorskip("torch")
    ours, theirs, arrays = _grads_pair(torch, np.float64, seed, scale)
    ours[0].grad.numpy()[0, 0] = np.nan
    theirs[0].grad[0, 0] = float("nan")
    assert clip_grad_value_(ours, clip) is None
    torch.nn.utils.clip_grad_value_(theirs, clip)
    for p, t, a in zip(ours, theirs, arrays):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())
    if clip >= 0:
        for p in ours:
            g = p.grad.numpy()
            assert np.all(np.isnan(g) | (np.abs(g) <= clip))


@pytest.mark.parametrize("call,exc,words", [
    (lambda: clip_grad_norm_([Parameter(mp.zeros(1))], "big"), ValueError, "max_norm"),
    (lambda: clip_grad_norm_([Parameter(mp.zeros(1))], 1.0, norm_type=None), ValueError, "norm_type"),
    (lambda: clip_grad_norm_(3, 1.0), TypeError, "parameters"),
    (lambda: clip_grad_norm_([np.zeros(2)], 1.0), TypeError, "not a Tensor"),
    (lambda: clip_grad_value_([Parameter(mp.zeros(1))], float("nan")), ValueError, "clip_value"),
    (lambda: clip_grad_value_(None, 1.0), TypeError, "parameters"),
])
def test_clipping_bad_arguments(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
