"""minipool.models: LeNet5 against PyTorch, LeNet5Classic against the 1998 paper."""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool.models import LeNet5, LeNet5Classic, build_model
from minipool.models.lenet import RBF_BITMAPS, c3_connections, rbf_prototypes


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, n)


# ------------------------------------------------------------------ modern LeNet-5
def test_lenet5_shapes_and_keys():
    net = LeNet5(seed=0)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    assert shapes == {
        "conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,),
        "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
        "fc1.weight": (120, 400), "fc1.bias": (120,),
        "fc2.weight": (84, 120), "fc2.bias": (84,),
        "fc3.weight": (10, 84), "fc3.bias": (10,),
    }
    assert sum(v.size for v in net.state_dict().values()) == 61706  # the usual LeNet-5 count
    x, _ = batch()
    assert net(mp.tensor(x)).shape == (8, 10)
    maps = net.feature_maps(mp.tensor(x))
    assert [m.shape for m in maps.values()] == [(8, 6, 14, 14), (8, 16, 5, 5)]


def test_lenet5_seeded_init_is_reproducible_and_pytorch_like():
    a, b, c = LeNet5(seed=1), LeNet5(seed=1), LeNet5(seed=2)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
        assert not np.array_equal(v, c.state_dict()[k])
        fan_in = {"conv1": 25, "conv2": 150, "fc1": 400, "fc2": 120, "fc3": 84}[k.split(".")[0]]
        assert np.abs(v).max() <= 1 / np.sqrt(fan_in)
        assert np.abs(v).max() > 0.5 / np.sqrt(fan_in)


def test_lenet5_forward_matches_numpy_reference():
    """An independent forward pass: sliding windows + einsum, reshape-max pooling."""
    from numpy.lib.stride_tricks import sliding_window_view as windows

    net = LeNet5(seed=3)
    w = net.state_dict()
    x, _ = batch(4)

    def conv(a, weight, bias):
        patches = windows(a, (5, 5), axis=(2, 3))              # n, c, h, w, 5, 5
        return np.einsum("nchwij,ocij->nohw", patches, weight, optimize=True) + bias[None, :, None, None]

    def pool(a):
        n, c, h, wd = a.shape
        return a.reshape(n, c, h // 2, 2, wd // 2, 2).max(axis=(3, 5))

    h = pool(np.maximum(conv(x, w["conv1.weight"], w["conv1.bias"]), 0))
    h = pool(np.maximum(conv(h, w["conv2.weight"], w["conv2.bias"]), 0)).reshape(4, -1)
    h = np.maximum(h @ w["fc1.weight"].T + w["fc1.bias"], 0)
    h = np.maximum(h @ w["fc2.weight"].T + w["fc2.bias"], 0)
    ref = h @ w["fc3.weight"].T + w["fc3.bias"]
    np.testing.assert_allclose(net(mp.tensor(x)).numpy(), ref, rtol=1e-4, atol=1e-5)


def torch_lenet5(torch):
    nn = torch.nn

    class TorchLeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(400, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    return TorchLeNet5()


def test_lenet5_weights_move_both_ways_with_pytorch():
    torch = pytest.importorskip("torch")
    x, _ = batch(6)
    ours, theirs = LeNet5(seed=0), torch_lenet5(torch)
    assert {k: tuple(v.shape) for k, v in theirs.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}
    # minipool -> torch
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(mp.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
    # torch -> minipool (a freshly initialised torch model)
    torch.manual_seed(7)
    fresh = torch_lenet5(torch)
    ours.load_state_dict({k: v.numpy() for k, v in fresh.state_dict().items()})
    with torch.no_grad():
        expected = fresh(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(mp.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 5e-4)])
def test_one_sgd_step_matches_pytorch(momentum, weight_decay):
    torch = pytest.importorskip("torch")
    from minipool import optim

    x, y = batch(16, seed=4)
    ours, theirs = LeNet5(seed=5), torch_lenet5(torch)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    opt = optim.SGD(list(ours.parameters()), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for step in range(2):  # the second step exercises the momentum buffer
        loss = F.cross_entropy(ours(mp.tensor(x)), mp.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
        expected = theirs.state_dict()
        for k, v in ours.state_dict().items():
            np.testing.assert_allclose(v, expected[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


# ------------------------------------------------------------------ LeNet-5 as published
def test_c3_table_is_the_papers():
    """Table I, from the text: six contiguous triples, six contiguous quadruples,
    three non-contiguous quadruples, then all six maps."""
    table = c3_connections()
    expected = [{(i + k) % 6 for k in range(3)} for i in range(6)]
    expected += [{(i + k) % 6 for k in range(4)} for i in range(6)]
    expected += [{0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}, set(range(6))]
    assert table.shape == (16, 6)
    assert [set(np.flatnonzero(row).tolist()) for row in table] == expected


def effective_parameter_count(model):
    total = 0
    for name, p in model.named_parameters():
        if name == "c3.weight":
            total += int(np.count_nonzero(model.c3.connections.numpy() * np.ones(p.shape)))
        else:
            total += p.data.size
    return total


def test_classic_layer_sizes_and_trainable_parameters_match_the_paper():
    net = LeNet5Classic(seed=0)
    x, _ = batch(3)
    maps = net.feature_maps(mp.tensor(x))
    assert [m.shape for m in maps.values()] == [(3, 6, 14, 14), (3, 16, 5, 5)]
    # the paper: C1 156, S2 12, C3 1516, S4 32, C5 48120, F6 10164 trainable parameters
    per_layer = {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164}
    for layer, count in per_layer.items():
        sub = getattr(net, layer)
        if layer == "c3":  # only the connected kernels are trainable
            n = int(np.broadcast_to(net.c3.connections.numpy(), net.c3.weight.shape).sum()) + 16
        else:
            n = sum(p.data.size for p in sub.parameters())
        assert n == count, layer
    assert effective_parameter_count(net) == sum(per_layer.values()) == 60000  # the paper's total
    assert net.trainable_parameter_count() == 60000
    assert LeNet5().trainable_parameter_count() == 61706
    # unconnected C3 kernels start at zero
    mask = net.c3.connections.numpy()
    assert not np.any(net.c3.weight.numpy() * (1 - mask))
    assert net(mp.tensor(x)).shape == (3, 10)


def test_rbf_prototypes_are_plus_minus_one_bitmaps():
    p = rbf_prototypes()
    assert p.shape == (10, 84) and set(np.unique(p)) == {-1.0, 1.0}
    for d in range(10):
        lines = RBF_BITMAPS[d].strip().splitlines()
        assert len(lines) == 12 and all(len(line) == 7 for line in lines)
    hamming = (p[:, None, :] != p[None, :, :]).sum(-1)
    assert hamming[~np.eye(10, dtype=bool)].min() >= 8  # distinct enough to tell apart


def torch_classic(torch, net):
    """The classic network rebuilt with torch ops, reading minipool's weights."""
    w = {k: torch.from_numpy(v.copy()) for k, v in net.state_dict().items()}

    def squash(a):
        return 1.7159 * torch.tanh(a * 2 / 3)

    def forward(x, params):
        def sub(a, layer):
            return torch.nn.functional.avg_pool2d(a, 2) * 4 * params[f"{layer}.weight"].view(1, -1, 1, 1) \
                + params[f"{layer}.bias"].view(1, -1, 1, 1)

        conv = torch.nn.functional.conv2d
        h = squash(sub(squash(conv(x, params["c1.weight"], params["c1.bias"])), "s2"))
        h = squash(sub(squash(conv(h, params["c3.weight"] * w["c3.connections"], params["c3.bias"])), "s4"))
        h = squash(conv(h, params["c5.weight"], params["c5.bias"])).flatten(1)
        h = squash(h @ params["f6.weight"].T + params["f6.bias"])
        if net.output_kind == "rbf":
            return -((h[:, None, :] - w["output.prototypes"][None]) ** 2).sum(-1)
        return h @ params["output.weight"].T + params["output.bias"]

    return w, forward


@pytest.mark.parametrize("output", ["rbf", "softmax"])
def test_classic_forward_loss_and_gradients_match_pytorch(output):
    torch = pytest.importorskip("torch")
    net = LeNet5Classic(output=output, seed=1)
    x, y = batch(5, seed=2)
    w, forward = torch_classic(torch, net)
    params = {n: w[n].clone().requires_grad_(True) for n, _ in net.named_parameters()}
    scores_t = forward(torch.from_numpy(x), params)
    if output == "rbf":  # the MAP criterion, written out: y_D + log(e^-j + sum_i e^-y_i)
        dist = -scores_t
        j = net.rubbish_penalty
        loss_t = (dist[torch.arange(5), torch.from_numpy(y)]
                  + torch.log(torch.exp(torch.tensor(-j)) + torch.exp(-dist).sum(1))).mean()
    else:
        loss_t = torch.nn.functional.cross_entropy(scores_t, torch.from_numpy(y))
    loss_t.backward()

    scores = net(mp.tensor(x))
    np.testing.assert_allclose(scores.numpy(), scores_t.detach().numpy(), rtol=1e-4, atol=1e-4)
    loss = net.loss(scores, mp.tensor(y))
    assert loss.item() == pytest.approx(loss_t.item(), rel=1e-4)
    loss.backward()
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), params[name].grad.numpy(), rtol=1e-3, atol=1e-5,
                                   err_msg=name)
    # no gradient reaches the unconnected C3 kernels
    assert not np.any(net.c3.weight.grad.numpy() * (1 - net.c3.connections.numpy()))


def test_classic_init_follows_the_paper():
    net = LeNet5Classic(seed=4)
    bounds = {"c1.weight": 2.4 / 25, "c5.weight": 2.4 / 400, "f6.weight": 2.4 / 120, "s2.weight": 0.6}
    for name, bound in bounds.items():
        values = net.state_dict()[name]
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.5 * bound


def test_build_model_and_bad_names():
    assert isinstance(build_model("lenet5-classic", output="softmax"), LeNet5Classic)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("alexnet")
    with pytest.raises(ValueError, match="output"):
        LeNet5Classic(output="svm")
