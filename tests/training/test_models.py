"""minipool.models: LeNet5 against PyTorch, LeNet5Classic against the 1998 paper."""
import numpy as np
import pytest

import minipool as mp
from minipool.models import LeNet5, LeNet5Classic, build_model
from minipool.models.lenet import RBF_BITMAPS, c3_connections, lenet5_torch, rbf_prototypes
from tests.training.training_checks import step_side_by_side


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
    assert sum(v.numel() for v in net.state_dict().values()) == 61706  # the usual LeNet-5 count
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


def assert_same_weights(a, b):
    """Two state_dicts (NumPy arrays or torch tensors) hold bit-identical float32 weights."""
    as_numpy = {k: (v.detach().numpy() if hasattr(v, "detach") else v) for k, v in b.items()}
    assert list(a) == list(as_numpy)
    for k, v in a.items():
        assert v.dtype == as_numpy[k].dtype == np.float32, k
        np.testing.assert_array_equal(v, as_numpy[k], err_msg=k)


def test_lenet5_to_torch_is_the_textbook_network_with_our_weights():
    torch = pytest.importorskip("torch")
    ours = LeNet5(seed=0)
    theirs = ours.to_torch(torch)
    assert isinstance(theirs, torch.nn.Module)
    # checked from torch's side: layer kinds and sizes, in order
    assert [(name, type(layer).__name__, tuple(layer.weight.shape)) for name, layer in theirs.named_children()] == [
        ("conv1", "Conv2d", (6, 1, 5, 5)), ("conv2", "Conv2d", (16, 6, 5, 5)), ("fc1", "Linear", (120, 400)),
        ("fc2", "Linear", (84, 120)), ("fc3", "Linear", (10, 84))]
    assert_same_weights(ours.state_dict(), theirs.state_dict())
    # a copy: changing one model leaves the other alone
    with torch.no_grad():
        theirs.conv1.weight.add_(1.0)
    assert not np.array_equal(ours.conv1.weight.numpy(), theirs.conv1.weight.detach().numpy())
    ours.fc3.bias.numpy()[...] = 5.0
    assert not np.any(theirs.fc3.bias.detach().numpy() == 5.0)


@pytest.mark.parametrize("seed,num_classes,n", [(0, 10, 6), (3, 10, 1), (4, 5, 9)])
def test_lenet5_forward_matches_its_torch_twin(seed, num_classes, n):
    torch = pytest.importorskip("torch")
    x, _ = batch(n, seed=seed)
    x *= 3.0  # large inputs: every ReLU and pooling window is exercised
    ours = LeNet5(num_classes=num_classes, seed=seed)
    theirs = ours.to_torch(torch)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    assert expected.shape == (n, num_classes)
    np.testing.assert_allclose(ours(mp.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
    # lenet5_torch is the same network, read from any state_dict
    with torch.no_grad():
        again = lenet5_torch(torch, ours.state_dict())(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(again, expected)


def test_lenet5_weights_round_trip_through_torch():
    torch = pytest.importorskip("torch")
    x, _ = batch(6)
    ours = LeNet5(num_classes=7, seed=2)
    back = LeNet5.from_torch(ours.to_torch(torch))
    assert back.num_classes == 7
    assert_same_weights(ours.state_dict(), back.state_dict())
    # torch -> minipool: a model initialised by torch, read from the module and from its state_dict
    torch.manual_seed(7)
    fresh = lenet5_torch(torch)
    with torch.no_grad():
        expected = fresh(torch.from_numpy(x)).numpy()
    for weights in (fresh, fresh.state_dict(), {k: v.clone().requires_grad_(True) for k, v in fresh.state_dict().items()}):
        loaded = LeNet5.from_torch(weights)
        assert_same_weights(loaded.state_dict(), fresh.state_dict())
        np.testing.assert_allclose(loaded(mp.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
    # and the plain route: our load_state_dict takes torch's tensors as they are
    ours = LeNet5(seed=0)
    ours.load_state_dict(fresh.state_dict())
    assert_same_weights(ours.state_dict(), fresh.state_dict())


@pytest.mark.parametrize("not_torch", ["torch", None, np, mp])
def test_lenet5_torch_refuses_anything_but_the_torch_module(not_torch):
    with pytest.raises(TypeError, match=r"LeNet5\.to_torch: torch must be the torch module itself .*got"):
        LeNet5(seed=0).to_torch(not_torch)
    with pytest.raises(TypeError, match=r"lenet5_torch: torch must be the torch module itself .*got"):
        lenet5_torch(not_torch)
    with pytest.raises(TypeError, match="from_torch: weights must be a torch.nn.Module or a state_dict"):
        LeNet5.from_torch(not_torch)


def test_lenet5_torch_bad_weights_are_clear_errors():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="got module torch.nn"):
        lenet5_torch(torch.nn)
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        lenet5_torch(torch, [np.zeros(3)])
    wrong = LeNet5(seed=0).state_dict()
    wrong["conv1.weight"] = np.zeros((6, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="lenet5_torch: state_dict does not fit LeNet-5 with 10 classes.*conv1.weight"):
        lenet5_torch(torch, wrong)
    missing = lenet5_torch(torch).state_dict()
    del missing["fc2.bias"]
    with pytest.raises(ValueError, match="missing keys: fc2.bias"):
        LeNet5.from_torch(missing)


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 5e-4)])
def test_one_sgd_step_matches_pytorch(momentum, weight_decay):
    torch = pytest.importorskip("torch")
    from minipool import optim

    x, y = batch(16, seed=4)
    ours = LeNet5(seed=5)
    theirs = ours.to_torch(torch)
    opt = optim.SGD(list(ours.parameters()), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for step in range(2):  # the second step exercises the momentum buffer
        loss, tloss = step_side_by_side(torch, ours, opt, theirs, topt, x, y)
        assert loss == pytest.approx(tloss, rel=1e-5)
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
            total += p.numpy().size
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
            n = sum(p.numpy().size for p in sub.parameters())
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
    w = {k: torch.from_numpy(v.numpy().copy()) for k, v in net.state_dict().items()}

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
