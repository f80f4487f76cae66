"""Adagrad, Adadelta, Adamax, NAdam, RAdam, ASGD and the schedules LinearLR, ConstantLR,
PolynomialLR, CosineAnnealingWarmRestarts, CyclicLR, SequentialLR and ChainedScheduler.

Each is run beside torch.optim on the same parameters and gradients, every step compared
(float64 to rounding, float32 to a few ulps), with weight_decay / maximize / the other options;
Adagrad and the schedules also against formulas written out here; state_dicts resume bit for
bit; bad arguments raise errors that name them.
"""
import math
import pickle

import numpy as np
import pytest

import minipool as mp
from minipool import optim
from minipool.nn import Parameter
from tests.core.optim_helpers import assert_resumes_bit_identically, gradient_sequence, make_params, run

torch = pytest.importorskip("torch")

OPTIMISERS = {
    "Adagrad": [dict(), dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-6),
                dict(lr=0.05, maximize=True)],
    "Adadelta": [dict(), dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.2), dict(maximize=True, rho=0.0)],
    "Adamax": [dict(), dict(lr=0.01, betas=(0.8, 0.9), eps=1e-4, weight_decay=0.1), dict(maximize=True)],
    "NAdam": [dict(), dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, momentum_decay=0.01),
              dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True)],
    "RAdam": [dict(), dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1),
              dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True)],
    "ASGD": [dict(), dict(lr=0.05, lambd=0.01, alpha=0.5, t0=10, weight_decay=0.1),
             dict(lr=0.02, t0=3, maximize=True)],
}
CASES = [(name, i) for name, options in OPTIMISERS.items() for i in range(len(options))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, option", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_optimiser_trajectory_matches_torch(name, option, dtype):
    kwargs = OPTIMISERS[name][option]
    init, grads = make_params(dtype), gradient_sequence(60, dtype, varied_scale=True)
    skip = {(3, 1), (4, 1), (10, 0)}  # parameters without a gradient on some steps
    ours, _ = run(None, lambda p: getattr(optim, name)(p, **kwargs), init, grads, skip=skip)
    theirs, _ = run(torch, lambda p: getattr(torch.optim, name)(p, **kwargs), init, grads, skip=skip)
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-4, 1e-6)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            assert x.dtype == dtype
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {step}")


def test_optimiser_defaults_and_state_names_are_torchs():
    for name in OPTIMISERS:
        p, q = Parameter(mp.ones(3)), torch.ones(3, requires_grad=True)
        ours, theirs = getattr(optim, name)([p]), getattr(torch.optim, name)([q])
        for key, value in ours.defaults.items():
            want = theirs.defaults[key]
            assert value == (tuple(want) if isinstance(want, tuple) else want), (name, key)
        p.grad, q.grad = mp.ones(3), torch.ones(3)
        ours.step()
        theirs.step()
        assert set(ours.state_dict()["state"][0]) == set(theirs.state_dict()["state"][0]), name


def adagrad_by_hand(p, grads, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                    eps=1e-10):
    """Element by element, from the algorithm in PyTorch's documentation."""
    p = [float(v) for v in p]
    total = [initial_accumulator_value] * len(p)
    for t, g_all in enumerate(grads, start=1):
        rate = lr / (1 + (t - 1) * lr_decay)
        for i, g in enumerate(g_all):
            g = float(g) + weight_decay * p[i]
            total[i] += g * g
            p[i] -= rate * g / (math.sqrt(total[i]) + eps)
    return np.array(p)


@pytest.mark.parametrize("kwargs", OPTIMISERS["Adagrad"][:2])
def test_adagrad_matches_the_documented_algorithm(kwargs):
    rng = np.random.default_rng(5)
    start, grads = rng.standard_normal(6), rng.standard_normal((20, 6))
    w = Parameter(mp.tensor(start.copy()))
    opt = optim.Adagrad([w], **kwargs)
    for g in grads:
        w.grad = mp.tensor(g)
        opt.step()
    np.testing.assert_allclose(w.numpy(), adagrad_by_hand(start, grads, **kwargs), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(OPTIMISERS))
def test_optimiser_resumes_bit_identically(name):
    init, grads = make_params(np.float32), gradient_sequence(12, np.float32, varied_scale=True)
    assert_resumes_bit_identically(lambda p: getattr(optim, name)(p, **OPTIMISERS[name][1]),
                                   lambda o: optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), init, grads)


@pytest.mark.parametrize("name, kwargs, words", [
    ("Adagrad", dict(lr=-1), "lr must be >= 0"), ("Adagrad", dict(lr_decay=-0.1), "lr_decay"),
    ("Adagrad", dict(initial_accumulator_value=-1), "initial_accumulator_value"),
    ("Adagrad", dict(eps=-1), "eps"), ("Adadelta", dict(rho=1.5), "rho must be <= 1"),
    ("Adadelta", dict(weight_decay=-1), "weight_decay"), ("Adamax", dict(betas=(1.0, 0.9)), r"betas\[0\]"),
    ("Adamax", dict(betas=0.9), "betas must be a pair"), ("NAdam", dict(momentum_decay=-1), "momentum_decay"),
    ("RAdam", dict(betas=(0.9, -0.1)), r"betas\[1\]"), ("RAdam", dict(lr="fast"), "lr must be a real number"),
    ("ASGD", dict(lr=-0.1), "lr must be >= 0"), ("ASGD", dict(weight_decay=-1), "weight_decay"),
])
def test_optimiser_arguments_are_validated(name, kwargs, words):
    with pytest.raises(ValueError, match=words):
        getattr(optim, name)([Parameter(mp.zeros(2))], **kwargs)
    with pytest.raises((ValueError, TypeError)):  # torch refuses them too
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)


# --------------------------------------------------------------------------- schedules
def _sched(lib, name, kwargs):
    return lambda o: getattr(lib.optim.lr_scheduler, name)(o, **kwargs)


SCHEDULES = {
    "linear": ("LinearLR", dict()), "linear_down": ("LinearLR", dict(start_factor=1.0, end_factor=0.1, total_iters=7)),
    "constant": ("ConstantLR", dict()), "constant_half": ("ConstantLR", dict(factor=0.5, total_iters=3)),
    "polynomial": ("PolynomialLR", dict()), "polynomial_sq": ("PolynomialLR", dict(total_iters=8, power=2.0)),
    "warm_restarts": ("CosineAnnealingWarmRestarts", dict(T_0=4)),
    "warm_restarts_mult": ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.001)),
    "cyclic": ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=4)),
    "cyclic2": ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5, mode="triangular2")),
    "cyclic_exp": ("CyclicLR", dict(base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=3, mode="exp_range", gamma=0.9)),
    "cyclic_fn": ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=2, scale_fn=lambda x: 1 / (1 + x),
                                   scale_mode="iterations", base_momentum=0.5, max_momentum=0.7)),
}


def _two_groups(lib, params):
    return [{"params": params[:2]}, {"params": params[2:], "lr": 0.02}]


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
@pytest.mark.parametrize("sched", list(SCHEDULES))
def test_schedules_match_torch(sched, opt_name):
    name, kwargs = SCHEDULES[sched]
    init, grads = make_params(np.float64), gradient_sequence(30, np.float64, varied_scale=True)
    opt_kwargs = dict(lr=0.05, momentum=0.5) if opt_name == "SGD" else dict(lr=0.05)

    def make_opt(lib_optim):
        return lambda p: getattr(lib_optim, opt_name)(_two_groups(lib_optim, p), **opt_kwargs)
    ours, our_lrs = run(None, make_opt(optim), init, grads, _sched(mp, name, kwargs))
    theirs, their_lrs = run(torch, make_opt(torch.optim), init, grads, _sched(torch, name, kwargs))
    np.testing.assert_allclose(our_lrs, their_lrs, rtol=1e-14, atol=0)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")


def _rates(lib, make_scheds, steps=20, epochs=None):
    """The rates of two parameter groups, from construction through ``steps`` steps."""
    if lib is torch:
        params = [torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)]
    else:
        params = [Parameter(mp.zeros(2)), Parameter(mp.zeros(1))]
    lib_optim = torch.optim if lib is torch else optim
    opt = lib_optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.3}], lr=0.1, momentum=0.9)
    sched = make_scheds(lib_optim.lr_scheduler, opt)
    out = []
    for k in range(steps + 1):
        if k:
            opt.step()
            sched.step() if epochs is None else sched.step(epochs[k - 1])
        out.append(list(sched.get_last_lr()) + [g["lr"] for g in opt.param_groups])
    return out


COMBINED = {
    "warmup_then_cosine": lambda L, o: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=4),
                                                       L.CosineAnnealingLR(o, T_max=10)], milestones=[4]),
    "three_phases": lambda L, o: L.SequentialLR(o, [L.ConstantLR(o, 0.5, total_iters=2), L.StepLR(o, 3, 0.5),
                                                 L.ExponentialLR(o, 0.9)], milestones=[3, 9]),
    "multistep_after_linear": lambda L, o: L.SequentialLR(o, [L.LinearLR(o, 0.2, total_iters=3),
                                                           L.MultiStepLR(o, [2, 5], 0.1)], milestones=[5]),
    "polynomial_after_constant": lambda L, o: L.SequentialLR(o, [L.ConstantLR(o, 0.1, total_iters=9),
                                                              L.PolynomialLR(o, 6, 2.0)], milestones=[3]),
    "chained": lambda L, o: L.ChainedScheduler([L.ConstantLR(o, 0.1, total_iters=3), L.ExponentialLR(o, 0.9)]),
    "chained_with_optimizer": lambda L, o: L.ChainedScheduler(
        [L.LinearLR(o, 0.5, total_iters=4), L.StepLR(o, 2, 0.5), L.PolynomialLR(o, 30)], optimizer=o),
}


@pytest.mark.parametrize("combo", list(COMBINED))
def test_combined_schedules_match_torch(combo):
    np.testing.assert_allclose(_rates(mp, COMBINED[combo]), _rates(torch, COMBINED[combo]), rtol=1e-14)


def test_warm_restarts_with_fractional_epochs_match_torch():
    epochs = [0.25 * k for k in range(1, 40)]
    for kwargs in (dict(T_0=2), dict(T_0=2, T_mult=3, eta_min=0.01)):
        make = lambda L, o: L.CosineAnnealingWarmRestarts(o, **kwargs)  # noqa: E731
        np.testing.assert_allclose(_rates(mp, make, len(epochs), epochs),
                                   _rates(torch, make, len(epochs), epochs), rtol=1e-14)


def test_schedules_by_hand():
    """Closed forms written out: the recursive updates must stay on them."""
    def rates(make, steps):
        opt = optim.SGD([Parameter(mp.zeros(1))], lr=2.0, momentum=0.9)
        sched = make(opt)
        out = [sched.get_last_lr()[0]]
        for _ in range(steps):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr()[0])
        return out
    L = optim.lr_scheduler
    np.testing.assert_allclose(rates(lambda o: L.LinearLR(o, 0.25, 0.75, total_iters=4), 6),
                               [2 * (0.25 + 0.5 * min(t, 4) / 4) for t in range(7)], rtol=1e-14)
    np.testing.assert_allclose(rates(lambda o: L.PolynomialLR(o, total_iters=5, power=3.0), 7),
                               [2 * (1 - min(t, 5) / 5) ** 3 for t in range(8)], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rates(lambda o: L.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2), 9),
                               [1 + math.cos(math.pi * c / T) for c, T in
                                [(0, 2), (1, 2), (0, 4), (1, 4), (2, 4), (3, 4), (0, 8), (1, 8), (2, 8), (3, 8)]],
                               rtol=1e-14, atol=1e-15)
    triangle = [0.5 + 1.5 * (1 - abs(t % 6 - 3) / 3) for t in range(13)]
    np.testing.assert_allclose(rates(lambda o: L.CyclicLR(o, 0.5, 2.0, step_size_up=3), 12), triangle, rtol=1e-14)


@pytest.mark.parametrize("combo", ["warmup_then_cosine", "three_phases", "chained"])
def test_combined_schedules_resume_bit_identically(combo):
    init, grads = make_params(np.float32), gradient_sequence(14, np.float32)
    assert_resumes_bit_identically(lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                   lambda o: COMBINED[combo](optim.lr_scheduler, o), init, grads)


@pytest.mark.parametrize("sched", ["linear", "constant_half", "polynomial_sq", "warm_restarts_mult", "cyclic2"])
def test_new_schedules_resume_bit_identically(sched):
    name, kwargs = SCHEDULES[sched]
    init, grads = make_params(np.float32), gradient_sequence(14, np.float32)
    assert_resumes_bit_identically(lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                   _sched(mp, name, kwargs), init, grads)


class Halving:
    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return 0.5 ** x


def test_cyclic_state_dict_keeps_callable_objects_not_functions_and_pickles():
    opt = optim.SGD([Parameter(mp.zeros(1))], lr=0.1, momentum=0.9)
    with_object = optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, scale_fn=Halving())
    twin = torch.optim.lr_scheduler.CyclicLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1,
                                                             momentum=0.9), 0.01, 0.1, scale_fn=Halving())
    state = with_object.state_dict()
    assert state["_scale_fn_custom"] == twin.state_dict()["_scale_fn_custom"] == {"calls": 2}
    pickle.dumps(state)
    with_lambda = optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, scale_fn=lambda x: 1.0)
    assert with_lambda.state_dict()["_scale_fn_custom"] is None
    pickle.dumps(with_lambda.state_dict())


@pytest.mark.parametrize("make, err, words", [
    (lambda o: optim.lr_scheduler.LinearLR(o, start_factor=0), ValueError, "start_factor must be > 0"),
    (lambda o: optim.lr_scheduler.LinearLR(o, end_factor=1.5), ValueError, "end_factor must be <= 1"),
    (lambda o: optim.lr_scheduler.ConstantLR(o, factor=2), ValueError, "factor must be <= 1"),
    (lambda o: optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "T_0"),
    (lambda o: optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError, "T_mult"),
    (lambda o: optim.lr_scheduler.CyclicLR(o, 0.1, 1.0, mode="sine"), ValueError, "mode must be"),
    (lambda o: optim.lr_scheduler.CyclicLR(optim.Adagrad(o.param_groups[0]["params"]), 0.1, 1.0),
     ValueError, "cycle_momentum=True needs an optimizer with momentum"),
    (lambda o: optim.lr_scheduler.SequentialLR(o, [optim.lr_scheduler.StepLR(o, 2)], milestones=[3]),
     ValueError, "expected 0 milestones"),
    (lambda o: optim.lr_scheduler.SequentialLR(o, [], milestones=[]), ValueError, "schedulers is empty"),
    (lambda o: optim.lr_scheduler.SequentialLR(o, [optim.lr_scheduler.LinearLR(o), optim.lr_scheduler.ChainedScheduler(
        [optim.lr_scheduler.StepLR(o, 2)])], milestones=[2]), ValueError, "cannot restart at a milestone"),
    (lambda o: optim.lr_scheduler.ChainedScheduler([optim.lr_scheduler.ReduceLROnPlateau(o)]),
     ValueError, "ReduceLROnPlateau, which steps with a metric"),
    (lambda o: optim.lr_scheduler.ChainedScheduler(
        [optim.lr_scheduler.StepLR(optim.SGD([Parameter(mp.zeros(1))], lr=1.0), 2)], optimizer=o),
     ValueError, "belongs to another optimizer"),
])
def test_schedule_arguments_are_validated(make, err, words):
    opt = optim.SGD([Parameter(mp.zeros(1))], lr=1.0, momentum=0.9)
    with pytest.raises(err, match=words):
        make(opt)


def test_multiplicative_lr_matches_torch_and_resumes():
    fns = [lambda e: 0.9, lambda e: 1.0 if e % 3 else 0.5]
    make = lambda L, o: L.MultiplicativeLR(o, fns)  # noqa: E731
    np.testing.assert_allclose(_rates(mp, make), _rates(torch, make), rtol=1e-14)
    make_one = lambda L, o: L.MultiplicativeLR(o, lambda e: 0.95)  # noqa: E731
    np.testing.assert_allclose(_rates(mp, make_one), _rates(torch, make_one), rtol=1e-14)
    init, grads = make_params(np.float32), gradient_sequence(12, np.float32)
    assert_resumes_bit_identically(lambda p: optim.SGD(p, lr=0.1), lambda o: optim.lr_scheduler.MultiplicativeLR(
        o, lambda e: 0.8), init, grads)
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        optim.lr_scheduler.MultiplicativeLR(optim.SGD([{"params": [Parameter(mp.zeros(1))]},
                                                       {"params": [Parameter(mp.zeros(1))]}], lr=1.0), [fns[0]])
