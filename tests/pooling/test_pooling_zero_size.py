"""Size-0 dimensions in pooling: minipool refuses exactly where PyTorch 2.13 refuses.

PyTorch's rule differs by op (checked here against torch itself, case by case):
* sliding-window pools (max/avg/LP 1-3d): only the batch N may be 0; an unbatched
  input's C is a non-batch dimension, so (0, L) / (0, H, W) / (0, D, H, W) are refused;
* adaptive max 1-3d, adaptive_avg_pool3d, fractional max pool, max_unpool: PyTorch runs
  unbatched input as a batch of C planes, so an unbatched C of 0 is allowed; a batched
  C of 0 is refused;
* adaptive_avg_pool1d/2d: C = 0 is allowed either way.
minipool's own pools (min/sum/stochastic pooling, global pooling) follow the rule of
their family; channels-last input applies the same rule to its last (channel) axis.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


OPS = {  # name: (rank, call(functional module, x))
    "max_pool1d": (1, lambda f, x: f.max_pool1d(x, 2)),
    "max_pool2d": (2, lambda f, x: f.max_pool2d(x, 2)),
    "max_pool3d": (3, lambda f, x: f.max_pool3d(x, 2)),
    "avg_pool1d": (1, lambda f, x: f.avg_pool1d(x, 2)),
    "avg_pool2d": (2, lambda f, x: f.avg_pool2d(x, 2)),
    "avg_pool3d": (3, lambda f, x: f.avg_pool3d(x, 2)),
    "lp_pool1d": (1, lambda f, x: f.lp_pool1d(x, 2, 2)),
    "lp_pool2d": (2, lambda f, x: f.lp_pool2d(x, 2, 2)),
    "lp_pool3d": (3, lambda f, x: f.lp_pool3d(x, 2, 2)),
    "adaptive_max_pool1d": (1, lambda f, x: f.adaptive_max_pool1d(x, 2)),
    "adaptive_max_pool2d": (2, lambda f, x: f.adaptive_max_pool2d(x, 2)),
    "adaptive_max_pool3d": (3, lambda f, x: f.adaptive_max_pool3d(x, 2)),
    "adaptive_avg_pool1d": (1, lambda f, x: f.adaptive_avg_pool1d(x, 2)),
    "adaptive_avg_pool2d": (2, lambda f, x: f.adaptive_avg_pool2d(x, 2)),
    "adaptive_avg_pool3d": (3, lambda f, x: f.adaptive_avg_pool3d(x, 2)),
    "fractional_max_pool2d": (2, lambda f, x: f.fractional_max_pool2d(x, 2, output_size=2)),
    "fractional_max_pool3d": (3, lambda f, x: f.fractional_max_pool3d(x, 2, output_size=2)),
}


def shapes(rank):
    spatial = (4,) * rank
    return [(0,) + spatial, (2, 0) + spatial, (0, 2) + spatial, (0, 0) + spatial]


def outcome(call):
    try:
        y = call()
    except (RuntimeError, ValueError, IndexError) as e:
        return "refused", str(e)
    y = y[0] if isinstance(y, tuple) else y
    return "ok", tuple(y.shape)


@pytest.mark.parametrize("name", sorted(OPS))
def test_refuses_where_torch_refuses(name):
    rank, call = OPS[name]
    for shape in shapes(rank):
        expected = outcome(lambda: call(TF, torch.zeros(shape)))
        got = outcome(lambda: call(F, mp.zeros(*shape)))
        assert got[0] == expected[0], (name, shape, got, expected)
        if got[0] == "ok":
            assert got[1] == expected[1], (name, shape)
        else:
            assert name in got[1] and ("empty non-batch" in got[1] or "non-batch" in got[1])


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_unpool_refuses_where_torch_refuses(rank):
    for shape in shapes(rank):
        expected = outcome(lambda: getattr(TF, f"max_unpool{rank}d")(
            torch.zeros(shape), torch.zeros(shape, dtype=torch.int64), 2))
        got = outcome(lambda: getattr(F, f"max_unpool{rank}d")(
            mp.zeros(*shape), np.zeros(shape, np.int64), 2))
        assert got[0] == expected[0], (rank, shape, got, expected)
        if got[0] == "ok":
            assert got[1] == expected[1]


@pytest.mark.parametrize("name", ["min_pool1d", "min_pool2d", "min_pool3d", "sum_pool1d",
                                  "sum_pool2d", "sum_pool3d"])
def test_minipool_window_pools_follow_the_window_rule(name):
    rank = int(name[-2])
    fn = getattr(F, name)
    spatial = (4,) * rank
    assert fn(mp.zeros(*((0, 3) + spatial)), 2).shape == (0, 3) + (2,) * rank
    for shape in ((0,) + spatial, (2, 0) + spatial):
        with pytest.raises(ValueError, match=f"{name}: .*empty non-batch"):
            fn(mp.zeros(*shape), 2)


def test_stochastic_and_global_pools():
    with pytest.raises(ValueError, match="empty non-batch"):
        F.stochastic_pool2d(mp.zeros(2, 0, 4, 4), 2)
    with pytest.raises(ValueError, match="empty non-batch"):
        F.stochastic_pool2d(mp.zeros(0, 4, 4), 2, training=False)
    assert F.stochastic_pool2d(mp.zeros(0, 2, 4, 4), 2).shape == (0, 2, 2, 2)
    with pytest.raises(ValueError, match="empty non-batch"):
        F.global_max_pool2d(mp.zeros(2, 0, 4, 4))          # adaptive max's rule
    assert F.global_avg_pool2d(mp.zeros(2, 0, 4, 4)).shape == (2, 0)   # adaptive avg's rule


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d", "lp_pool2d",
                                  "adaptive_max_pool2d", "fractional_max_pool2d"])
def test_channels_last_applies_the_rule_to_its_channel_axis(name):
    kwargs = dict(data_format="channels_last")
    f = getattr(F, name)
    args = {"lp_pool2d": (2, 2), "adaptive_max_pool2d": (2,)}.get(name, (2,))
    extra = dict(output_size=2) if name.startswith("fractional") else {}
    with pytest.raises(ValueError, match="empty non-batch"):
        f(mp.zeros(2, 4, 4, 0), *args, **extra, **kwargs)
    y = f(mp.zeros(0, 4, 4, 3), *args, **extra, **kwargs)
    y = y[0] if isinstance(y, tuple) else y
    assert y.shape == (0, 2, 2, 3)


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool3d", "lp_pool1d", "adaptive_max_pool2d",
                                  "fractional_max_pool3d"])
def test_zero_batch_backward_gives_an_empty_gradient(name):
    rank, call = OPS[name]
    x = mp.zeros(*((0, 2) + (4,) * rank), requires_grad=True)
    y = call(F, x)
    y.sum().backward()
    assert x.grad.shape == x.shape
