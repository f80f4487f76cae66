"""Module and optimiser habits, round 4: full backward (pre-)hooks, ParameterList and
ParameterDict, and ``opt.state[p]`` holding Tensors -- each against torch.nn / torch.optim."""
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(11)
W, B = RNG.standard_normal((2, 3)), RNG.standard_normal(2)
X = RNG.standard_normal((4, 3))
G = RNG.standard_normal((4, 2))


def linear(lib):
    layer = lib.nn.Linear(3, 2).double()
    with lib.no_grad():
        layer.weight.copy_(lib.tensor(W))
        layer.bias.copy_(lib.tensor(B))
    return layer


def as_numpy(t):
    return None if t is None else (t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy())


# --------------------------------------------------------------------------- backward hooks
def run_hooked(lib, replace_input, replace_output, x_requires_grad=True):
    layer, log = linear(lib), []

    def hook(module, grad_input, grad_output):
        assert module is layer
        log.append(("hook", [as_numpy(g) for g in grad_input], [as_numpy(g) for g in grad_output]))
        if replace_input:
            return tuple(None if g is None else g * 2 for g in grad_input)

    def pre_hook(module, grad_output):
        log.append(("pre", [as_numpy(g) for g in grad_output]))
        if replace_output:
            return (grad_output[0] * -3,)

    layer.register_full_backward_pre_hook(pre_hook)
    handle = layer.register_full_backward_hook(hook)
    x = lib.tensor(X, requires_grad=x_requires_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns when no input requires grad
        (layer(x) * lib.tensor(G)).sum().backward()
    handle.remove()
    (layer(lib.tensor(X)) * 1).sum().backward()  # removed: the hook is not called again
    return log, as_numpy(x.grad), as_numpy(layer.weight.grad)


@pytest.mark.parametrize("replace_input", [False, True])
@pytest.mark.parametrize("replace_output", [False, True])
def test_full_backward_hooks_match_torch(replace_input, replace_output):
    ours, theirs = (run_hooked(lib, replace_input, replace_output) for lib in (mp, torch))
    log_o, log_t = ours[0], theirs[0]
    assert [entry[0] for entry in log_o] == [entry[0] for entry in log_t] == ["pre", "hook", "pre"]
    for a, b in zip(log_o, log_t):
        for arrays_o, arrays_t in zip(a[1:], b[1:]):
            for u, v in zip(arrays_o, arrays_t):
                np.testing.assert_allclose(u, v, rtol=1e-12)
    for u, v in zip(ours[1:], theirs[1:]):
        np.testing.assert_allclose(u, v, rtol=1e-12)
    # by hand: y = x W^T + b with upstream G, scaled by the pre-hook, then by the hook
    g_out = G * (-3 if replace_output else 1)
    np.testing.assert_allclose(ours[1], g_out @ W * (2 if replace_input else 1), rtol=1e-12)


def test_backward_hook_when_no_input_requires_grad_matches_torch():
    ours, theirs = (run_hooked(lib, False, False, x_requires_grad=False) for lib in (mp, torch))
    for lib in (mp, torch):
        layer = linear(lib)
        layer.register_full_backward_hook(lambda m, gi, go: None)
        with pytest.warns(UserWarning, match="no inputs require gradients"):
            layer(lib.tensor(X)).sum().backward()
    assert ours[0][1][1] == [None] and theirs[0][1][1] == [None]
    np.testing.assert_allclose(ours[0][1][2][0], theirs[0][1][2][0], rtol=1e-12)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-12)


def test_backward_hook_limits_and_refusals_name_the_way():
    class Pair(mp.nn.Module):
        def forward(self, a, b):
            return a * b

    pair = Pair()
    pair.register_full_backward_hook(lambda m, gi, go: None)
    a, b = mp.ones(2, requires_grad=True), mp.ones(2, requires_grad=True)
    with pytest.raises(NotImplementedError, match="register_hook"):
        pair(a, b)
    assert pair(a, mp.ones(2)).requires_grad  # one input needing grad is fine
    with pytest.raises(NotImplementedError, match="register_full_backward_hook"):
        mp.nn.ReLU().register_backward_hook(lambda m, gi, go: None)
    with pytest.raises(TypeError, match="hook must be callable"):
        mp.nn.ReLU().register_full_backward_hook(3)
    relu = mp.nn.ReLU()
    relu.register_full_backward_hook(lambda m, gi, go: (mp.ones(3), mp.ones(3)))
    with pytest.raises(RuntimeError, match="returned 2 gradients, expected 1"):
        relu(mp.ones(3, requires_grad=True)).sum().backward()


def test_hooked_module_keeps_forward_hooks_and_no_grad():
    layer, seen = linear(mp), []
    layer.register_forward_hook(lambda m, args, out: seen.append("forward"))
    layer.register_full_backward_hook(lambda m, gi, go: seen.append("backward"))
    with mp.no_grad():
        out = layer(mp.tensor(X, requires_grad=True))
    assert not out.requires_grad and seen == ["forward"]
    layer(mp.tensor(X, requires_grad=True)).sum().backward()
    assert seen == ["forward", "forward", "backward"]


# --------------------------------------------------------------------------- containers
def build_list(lib):
    return lib.nn.ParameterList([lib.nn.Parameter(lib.zeros(2, 3)), lib.ones(3, dtype=lib.float64)])


def test_parameter_list_matches_torch():
    ours, theirs = build_list(mp), build_list(torch)
    for pl in (ours, theirs):
        pl.append(pl[0].detach() + 1)
        pl.extend([pl[1].detach() * 2])
        pl += [pl[2].detach()]
    assert len(ours) == len(theirs) == 5
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for a, b in zip(ours, theirs):
        assert type(a).__name__ == type(b).__name__ == "Parameter" and a.requires_grad
        assert str(a.dtype) == str(b.dtype).replace("torch.", "") and a.shape == tuple(b.shape)
        np.testing.assert_array_equal(a.numpy(), b.detach().numpy())
    assert repr(ours) == repr(theirs).replace("torch.", "")
    assert repr(mp.nn.ParameterList()) == repr(torch.nn.ParameterList())
    assert ours[-1] is ours[4] and len(ours[1:3]) == 2
    ours[0] = mp.ones(4)
    assert ours[0].shape == (4,) and isinstance(ours[0], mp.nn.Parameter)
    with pytest.raises(IndexError):
        ours[7]
    with pytest.raises(TypeError, match="expected a Tensor or Parameter"):
        ours.append([1.0])


def test_parameter_dict_matches_torch():
    made = []
    for lib in (mp, torch):
        pd = lib.nn.ParameterDict({"b": lib.nn.Parameter(lib.zeros(2)), "a": lib.ones(1)})
        pd["c"] = lib.zeros(3, 3)
        pd.update(OrderedDict([("z", lib.ones(2)), ("y", lib.ones(1))]))
        pd.update([("x", lib.ones(1))])
        made.append(pd)
    ours, theirs = made
    assert list(ours.keys()) == list(theirs.keys()) == ["a", "b", "c", "z", "y", "x"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ("a" in ours) and ("q" not in ours) and ours.get("q") is None
    assert ours.pop("c").shape == (3, 3) and "c" not in ours and len(ours) == len(theirs) - 1
    assert type(ours["a"]).__name__ == "Parameter" and ours["a"].requires_grad
    for error in (KeyError, AttributeError):  # PyTorch raises AttributeError, a dict KeyError
        with pytest.raises(error, match="no key 'nope'"):
            ours["nope"]
    with pytest.raises(AttributeError):
        theirs["nope"]
    with pytest.raises(TypeError, match="keys must be strings"):
        ours[3] = mp.ones(1)


def test_containers_reach_parameters_to_state_dict_and_optimizers():
    class Net(mp.nn.Module):
        def __init__(self):
            super().__init__()
            self.scales = mp.nn.ParameterList([mp.ones(3), mp.ones(3)])
            self.shifts = mp.nn.ParameterDict({"first": mp.zeros(3)})

        def forward(self, x):
            for s in self.scales:
                x = x * s
            return x + self.shifts["first"]

    net = Net()
    assert list(net.state_dict()) == ["scales.0", "scales.1", "shifts.first"]
    assert "(scales): ParameterList(\n      (0): Parameter containing: [float32 of size 3]" in repr(net)
    opt = mp.optim.SGD(net.parameters(), lr=0.5)
    net(mp.tensor([1.0, 2.0, 3.0])).sum().backward()
    opt.step()
    np.testing.assert_allclose(net.shifts["first"].numpy(), [-0.5, -0.5, -0.5])
    np.testing.assert_allclose(net.scales[0].numpy(), [0.5, 0.0, -0.5])
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    twin = Net()
    twin.load_state_dict(net.state_dict())
    np.testing.assert_allclose(twin.scales[1].numpy(), net.scales[1].numpy())


# --------------------------------------------------------------------------- optimiser state
SETTINGS = {
    "SGD": dict(lr=0.1, momentum=0.9), "Adam": dict(amsgrad=True), "AdamW": dict(),
    "Adagrad": dict(), "Adadelta": dict(), "Adamax": dict(), "NAdam": dict(), "RAdam": dict(),
    "ASGD": dict(t0=1), "RMSprop": dict(momentum=0.5, centered=True),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_optimizer_state_holds_tensors_like_torch(name, dtype):
    init = np.array([[0.5, -1.0, 2.0], [0.1, 0.0, -0.3]], dtype)
    ours_p = mp.nn.Parameter(mp.tensor(init))
    theirs_p = torch.tensor(init, requires_grad=True)
    ours = getattr(mp.optim, name)([ours_p], **SETTINGS[name])
    theirs = getattr(torch.optim, name)([theirs_p], **SETTINGS[name])
    for step in range(3):
        g = np.random.default_rng(step).standard_normal(init.shape).astype(dtype)
        ours_p.grad, theirs_p.grad = mp.tensor(g), torch.tensor(g)
        ours.step()
        theirs.step()
        a, b = ours.state[ours_p], theirs.state[theirs_p]
        assert list(a) == list(b)
        for key in a:
            assert type(a[key]) is mp.Tensor, (key, type(a[key]))
            assert a[key].shape == tuple(b[key].shape), key
            assert str(a[key].dtype) == str(b[key].dtype).replace("torch.", ""), key
            np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-5, atol=1e-7,
                                       err_msg=key)
    if name != "SGD":
        assert ours.state[ours_p]["step"].item() == 3


def test_changing_the_state_in_place_steers_the_next_step_like_torch():
    results = []
    for lib in (mp, torch):
        p = lib.nn.Parameter(lib.tensor([1.0, -2.0]))
        opt = lib.optim.SGD([p], lr=0.1, momentum=0.9)
        for _ in range(2):
            p.grad = lib.tensor([0.5, 0.25])
            opt.step()
        opt.state[p]["momentum_buffer"].mul_(0)  # a user resetting momentum
        p.grad = lib.tensor([0.5, 0.25])
        opt.step()
        results.append((p.detach().numpy().copy(), opt.state[p]["momentum_buffer"].numpy().copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_state_is_a_defaultdict_and_state_dict_copies():
    p = mp.nn.Parameter(mp.ones(2))
    opt = mp.optim.Adam([p])
    assert opt.state[p] == {} and torch.optim.Adam([torch.ones(1, requires_grad=True)]).state[0] == {}
    p.grad = mp.ones(2)
    opt.step()
    saved = opt.state_dict()["state"][0]
    assert saved["exp_avg"] is not opt.state[p]["exp_avg"]
    assert not np.shares_memory(saved["exp_avg"].numpy(), opt.state[p]["exp_avg"].numpy())
    assert opt.state[p]["step"].dtype == mp.get_default_dtype() and opt.state[p]["step"].ndim == 0


def test_get_parameter_and_get_buffer_match_torch():
    made = [lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.BatchNorm1d(3)) for lib in (mp, torch)]
    for m in made:
        assert tuple(m.get_parameter("0.weight").shape) == (3, 2)
        assert tuple(m.get_buffer("1.running_var").shape) == (3,)
        assert m.get_parameter("1.bias") is m[1].bias
    for target in ("0.nope", "7.weight"):
        for m in made:
            with pytest.raises(AttributeError):
                m.get_parameter(target)
    for m in made:
        with pytest.raises(AttributeError):
            m.get_buffer("0.weight")
