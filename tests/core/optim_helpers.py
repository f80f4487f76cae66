"""Shared by the optimiser tests: parameters, gradients, a stepping loop for minipool or
torch, and the check that a saved optimiser (and schedule) resumes bit-identically."""
import pickle

import numpy as np

import minipool as mp
from minipool.nn import Parameter

SHAPES = [(3, 4), (5,), (2, 1, 3)]


def make_params(dtype, seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(dtype) for s in SHAPES]


def gradient_sequence(steps, dtype, seed=1, varied_scale=False):
    """``steps`` lists of one gradient per parameter; ``varied_scale``: each array times a
    random factor in [0.1, 3), so adaptive optimisers see gradients of unequal size."""
    r = np.random.default_rng(seed)
    sequence = []
    for _ in range(steps):
        grads = []
        for shape in SHAPES:
            g = r.standard_normal(shape)
            if varied_scale:
                g = g * r.uniform(0.1, 3)
            grads.append(g.astype(dtype))
        sequence.append(grads)
    return sequence


def run(lib, make_opt, init, grads, make_sched=None, skip=(), metrics=None):
    """Run ``len(grads)`` steps with minipool (lib=None) or torch; returns per-step
    parameters and rates.  ``skip``: (step, parameter) pairs left without a gradient."""
    if lib is None:
        params = [Parameter(a.copy()) for a in init]
        to_grad = mp.tensor
    else:
        params = [lib.tensor(a.copy(), requires_grad=True) for a in init]
        to_grad = lib.tensor
    opt = make_opt(params)
    sched = make_sched(opt) if make_sched else None
    history, lrs = [], []
    for step, gs in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, gs)):
            p.grad = None if (step, i) in skip else to_grad(g)
        opt.step()
        if sched is not None:
            sched.step(metrics[step]) if metrics is not None else sched.step()
            lrs.append(sched.get_last_lr())
        history.append([(p.numpy() if lib is None else p.detach().numpy()).copy() for p in params])
    return history, lrs


def _step(opt, sched, params, grads):
    for p, g in zip(params, grads):
        p.grad = mp.tensor(g)
    opt.step()
    sched.step()


def assert_resumes_bit_identically(make_opt, make_sched, init, grads, saved_after=5):
    """Save parameters, optimiser and schedule (pickled) after ``saved_after`` steps and take
    two more steps (which must not leak into the save); a fresh optimiser and schedule loaded
    from the save then follow the uninterrupted run bit for bit, rates included."""
    straight, straight_lrs = run(None, make_opt, init, grads, make_sched)
    params = [Parameter(a.copy()) for a in init]
    opt = make_opt(params)
    sched = make_sched(opt)
    for gs in grads[:saved_after]:
        _step(opt, sched, params, gs)
    saved = pickle.dumps({"params": [p.numpy().copy() for p in params], "opt": opt.state_dict(),
                          "sched": sched.state_dict()})
    for gs in grads[saved_after:saved_after + 2]:
        _step(opt, sched, params, gs)

    ckpt = pickle.loads(saved)
    fresh = [Parameter(a) for a in ckpt["params"]]
    opt2 = make_opt(fresh)
    sched2 = make_sched(opt2)
    opt2.load_state_dict(ckpt["opt"])
    sched2.load_state_dict(ckpt["sched"])
    for n, gs in enumerate(grads[saved_after:], start=saved_after):
        _step(opt2, sched2, fresh, gs)
        assert sched2.get_last_lr() == straight_lrs[n], f"rate after step {n}"
        for p, expected in zip(fresh, straight[n]):
            np.testing.assert_array_equal(p.numpy(), expected, err_msg=f"parameters after step {n}")
