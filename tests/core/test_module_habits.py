"""Module habits of PyTorch users: to()/double()/float(), apply(), requires_grad_(),
add_module(), named_modules()/modules()/children(), zero_grad(set_to_none),
register_buffer (persistent or not; kept when reassigned; converted by to()).
Each is compared with the same model written with torch.nn.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn

torch = pytest.importorskip("torch")


def build(lib):
    """A small nested model with a shared submodule and a buffer, in either library."""
    class Block(lib.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.Linear(3, 3)
            self.act = lib.ReLU()
            if lib is nn:
                self.register_buffer("scale", mp.tensor([2.0, 2.0, 2.0]))
                self.register_buffer("steps", mp.tensor(np.array(0, np.int64)))
                self.register_buffer("scratch", mp.zeros(3), persistent=False)
            else:
                self.register_buffer("scale", torch.tensor([2.0, 2.0, 2.0]))
                self.register_buffer("steps", torch.tensor(0))
                self.register_buffer("scratch", torch.zeros(3), persistent=False)

        def forward(self, x):
            return self.act(self.lin(x)) * self.scale

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.a = Block()
            self.b = Block()
            self.shared = self.a  # the same module under two names
            self.head = lib.Sequential(lib.Linear(3, 2), lib.Tanh())

        def forward(self, x):
            return self.head(self.b(self.a(x)))

    return Net()


def test_traversal_matches_torch_names_and_order():
    m, t = build(nn), build(torch.nn)
    assert [n for n, _ in m.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in m.named_modules(remove_duplicate=False)] == \
        [n for n, _ in t.named_modules(remove_duplicate=False)]
    assert [n for n, _ in m.named_children()] == [n for n, _ in t.named_children()]
    assert [type(c).__name__ for c in m.children()] == [type(c).__name__ for c in t.children()]
    assert [type(c).__name__ for c in m.modules()] == [type(c).__name__ for c in t.modules()]
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in m.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in m.named_parameters(prefix="net")] == [n for n, _ in t.named_parameters(prefix="net")]
    assert [n for n, _ in m.a.named_parameters(recurse=False)] == [] == \
        [n for n, _ in t.a.named_parameters(recurse=False)]
    assert len(list(m.buffers())) == len(list(t.buffers()))
    assert m.get_submodule("head.0") is m.head[0]
    with pytest.raises(AttributeError, match="no submodule"):
        m.get_submodule("head.5")


def test_state_dict_keys_skip_non_persistent_buffers_like_torch():
    m, t = build(nn), build(torch.nn)
    assert list(m.state_dict()) == list(t.state_dict())
    assert "a.scratch" not in m.state_dict()
    sd = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    m.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(m(mp.tensor(x)).numpy(), t(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)  # float32: a sum near 0


def test_assigning_to_a_buffer_name_keeps_it_a_buffer():
    m = build(nn).a
    m.scale = mp.tensor([1.0, 1.0, 1.0])
    assert "scale" in dict(m.named_buffers()) and m.state_dict()["scale"].tolist() == [1, 1, 1]
    m.scratch = mp.ones(3)
    assert "scratch" not in m.state_dict() and "scratch" in dict(m.named_buffers())
    t = build(torch.nn).a
    t.scale = torch.ones(3)
    assert "scale" in dict(t.named_buffers())
    m.scale = None  # None keeps the name reserved, saves nothing (as torch)
    t.scale = None
    assert "scale" not in m.state_dict() and "scale" not in t.state_dict()


def test_to_double_float_convert_floating_parameters_and_buffers_in_place():
    m = build(nn)
    params = list(m.parameters())
    opt = mp.optim.SGD(m.parameters(), lr=0.1)
    assert m.double() is m
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert [p is q for p, q in zip(m.parameters(), params)] == [True] * len(params)  # same objects
    assert m.a.scale.dtype == np.float64 and m.a.steps.dtype == np.int64  # integer buffer untouched
    m(mp.ones(2, 3, dtype=np.float64)).sum().backward()
    assert all(p.grad.dtype == np.float64 for p in m.parameters())
    opt.step()
    assert m.float() is m and all(p.dtype == np.float32 for p in m.parameters())
    assert all(p.grad.dtype == np.float32 for p in m.parameters())
    assert m.to(np.float64) is m and m.a.scale.dtype == np.float64
    assert m.to("cpu") is m and m.to(device="cpu", dtype=np.float32) is m and m.a.scale.dtype == np.float32
    assert m.cpu() is m
    t = build(torch.nn).double()
    assert all(p.dtype == torch.float64 for p in t.parameters()) and t.a.steps.dtype == torch.int64


def test_to_refuses_other_devices_and_non_float_dtypes():
    m = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="CPU only"):
        m.to("cuda")
    with pytest.raises(RuntimeError, match="CPU only"):
        m.cuda()
    with pytest.raises(TypeError, match="floating-point"):
        m.to(np.int64)
    with pytest.raises(TypeError, match="neither a dtype nor a device"):
        m.to(3.5j)


def test_apply_visits_children_first_then_self_like_torch():
    seen_m, seen_t = [], []
    build(nn).apply(lambda mod: seen_m.append(type(mod).__name__))
    build(torch.nn).apply(lambda mod: seen_t.append(type(mod).__name__))
    assert seen_m == seen_t

    def init(mod):
        if isinstance(mod, nn.Linear):
            with mp.no_grad():
                mod.weight.fill_(0.5)
                mod.bias.zero_()
    m = build(nn).apply(init)
    assert all(np.all(p.numpy() == (0.5 if n.endswith("weight") else 0)) for n, p in m.named_parameters())


def test_requires_grad_switches_every_parameter():
    m = build(nn)
    assert m.requires_grad_(False) is m
    assert not any(p.requires_grad for p in m.parameters())
    out = m(mp.ones(1, 3))
    assert not out.requires_grad
    m.head.requires_grad_()
    assert [p.requires_grad for p in m.parameters()] == [False] * 4 + [True] * 2


def test_add_module_register_parameter_and_bad_names():
    m = nn.Module()
    m.add_module("fc", nn.Linear(2, 2))
    m.register_module("act", nn.ReLU())
    m.register_parameter("alpha", nn.Parameter(mp.ones(1)))
    m.register_parameter("unused", None)
    t = torch.nn.Module()
    t.add_module("fc", torch.nn.Linear(2, 2))
    t.register_module("act", torch.nn.ReLU())
    t.register_parameter("alpha", torch.nn.Parameter(torch.ones(1)))
    t.register_parameter("unused", None)
    assert [n for n, _ in m.named_children()] == ["fc", "act"] == [n for n, _ in t.named_children()]
    assert [n for n, _ in m.named_parameters()] == ["alpha", "fc.weight", "fc.bias"] == \
        [n for n, _ in t.named_parameters()]
    assert list(m.state_dict()) == list(t.state_dict())
    assert "unused" not in t.state_dict() and "unused" not in m.state_dict()
    m.add_module("gone", None)
    assert m.gone is None and [n for n, _ in m.named_children()] == ["fc", "act"]
    with pytest.raises(TypeError, match="not a Module"):
        m.add_module("x", 3)
    with pytest.raises(KeyError, match="without '.'"):
        m.add_module("a.b", nn.ReLU())
    with pytest.raises(KeyError, match="already exists"):
        m.add_module("training", nn.ReLU())
    with pytest.raises(TypeError, match="must be a str"):
        m.register_buffer(1, mp.zeros(1))
    with pytest.raises(TypeError, match="Parameter"):
        m.register_buffer("p", nn.Parameter(mp.zeros(1)))
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("w", mp.zeros(1))


def test_zero_grad_set_to_none_semantics_match_torch():
    m, t = build(nn), build(torch.nn)
    x = np.ones((2, 3), np.float32)
    m(mp.tensor(x)).sum().backward()
    t(torch.tensor(x)).sum().backward()
    grads = [p.grad for p in m.parameters()]
    m.zero_grad(set_to_none=False)
    t.zero_grad(set_to_none=False)
    for p, pt, g in zip(m.parameters(), t.parameters(), grads):
        assert p.grad is not None and np.all(p.grad.numpy() == 0) and pt.grad is not None
        assert not p.grad.requires_grad
    m.zero_grad()
    t.zero_grad()
    assert all(p.grad is None for p in m.parameters()) and all(p.grad is None for p in t.parameters())
    m.zero_grad(set_to_none=False)  # nothing to zero: stays None, as torch
    t.zero_grad(set_to_none=False)
    assert all(p.grad is None for p in m.parameters()) and all(p.grad is None for p in t.parameters())


def _train_step(model, lib):
    opt = (mp.optim if lib is nn else torch.optim).SGD(model.parameters(), lr=0.1)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    out = model(mp.tensor(x) if lib is nn else torch.tensor(x, dtype=torch.float32))
    (out * out).sum().backward()
    opt.step()


@pytest.mark.parametrize("lib", [nn, torch.nn], ids=["minipool", "torch"])
def test_state_dict_views_the_live_weights_and_clone_keeps_a_snapshot(lib):
    """The early-stopping habit: state_dict() follows training; {k: v.clone()} does not."""
    model = lib.Linear(3, 2)
    live = model.state_dict()
    snapshot = {k: v.clone() for k, v in live.items()}
    assert not live["weight"].requires_grad and live["weight"].numel() == 6
    _train_step(model, lib)
    weight = model.weight.detach().numpy()
    np.testing.assert_array_equal(live["weight"].numpy(), weight)        # a view: it moved
    assert not np.array_equal(snapshot["weight"].numpy(), weight)        # the snapshot did not
    result = model.load_state_dict(snapshot)
    np.testing.assert_array_equal(live["weight"].numpy(), snapshot["weight"].numpy())  # in place
    assert tuple(result) == ([], []) and result.missing_keys == []


@pytest.mark.parametrize("lib", [nn, torch.nn], ids=["minipool", "torch"])
def test_load_state_dict_non_strict_returns_missing_and_unexpected_keys(lib):
    model = lib.Sequential(lib.Linear(3, 2), lib.ReLU(), lib.Linear(2, 1))
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("2.")}
    state["extra.weight"] = state["0.weight"].clone()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["2.weight", "2.bias"] and unexpected == ["extra.weight"]


def test_state_dict_keep_vars_and_prefix_as_torch():
    ours, theirs = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    assert ours.state_dict(keep_vars=True)["weight"] is ours.weight
    assert theirs.state_dict(keep_vars=True)["weight"] is theirs.weight
    assert list(ours.state_dict(prefix="net.")) == list(theirs.state_dict(prefix="net."))


@pytest.mark.parametrize("lib", [nn, torch.nn], ids=["minipool", "torch"])
def test_load_state_dict_between_forward_and_backward_is_refused(lib):
    """load_state_dict changes the weights in place, so a graph that saved them must not
    backpropagate through the old values: both libraries raise at backward."""
    model = lib.Linear(3, 2)
    x = np.ones((1, 3), np.float32)
    x = mp.tensor(x, requires_grad=True) if lib is nn else torch.tensor(x, dtype=torch.float32, requires_grad=True)
    out = model(x)  # the input's gradient needs the weight: the graph saves it
    model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    loss = (out * out).sum()
    with pytest.raises(RuntimeError, match="modified by an inplace operation|in-place"):
        loss.backward()


@pytest.mark.parametrize("lib", [nn, torch.nn], ids=["minipool", "torch"])
def test_reassigning_keeps_the_place_in_the_order(lib):
    # the usual "swap every ReLU" loop: setattr on a Sequential keeps the layer where it was
    seq = lib.Sequential(lib.Linear(2, 4), lib.ReLU(), lib.Linear(4, 3))
    setattr(seq, "1", lib.Tanh())
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh", "Linear"]
    lin = lib.Linear(2, 3)
    lin.weight = lib.Parameter(lin.weight.detach().clone())
    assert [name for name, _ in lin.named_parameters()] == ["weight", "bias"]
    assert list(lin.state_dict()) == ["weight", "bias"]
    block = lib.Sequential(lib.Conv2d(1, 2, 3), lib.ReLU())
    block[0] = lib.Conv2d(1, 2, 5)
    assert list(block.state_dict()) == ["0.weight", "0.bias"]


@pytest.mark.parametrize("lib", [nn, torch.nn], ids=["minipool", "torch"])
def test_assigning_the_wrong_kind_to_a_registered_name_raises(lib):
    T = mp if lib is nn else torch
    lin, bn = lib.Linear(2, 3), lib.BatchNorm1d(3)
    seq = lib.Sequential(lib.Linear(2, 2))
    for owner, name, value in ((lin, "weight", T.zeros(3, 2)), (seq, "0", T.zeros(2)),
                               (bn, "running_mean", 5)):
        with pytest.raises(TypeError, match=name):
            setattr(owner, name, value)
    assert [name for name, _ in lin.named_parameters()] == ["weight", "bias"]
    assert "running_mean" in bn.state_dict()
    # None keeps the name registered; a tensor goes to a buffer; del frees the name
    lin.bias = None
    assert [name for name, _ in lin.named_parameters()] == ["weight"]
    bn.running_mean = T.ones(3)
    assert list(bn.state_dict())[:3] == ["weight", "bias", "running_mean"]
    del lin.weight
    lin.weight = T.zeros(3, 2)
    assert [name for name, _ in lin.named_parameters()] == []


@pytest.mark.parametrize("lib", [nn, torch.nn], ids=["minipool", "torch"])
def test_sequential_slices_item_assignment_del_pop_and_add(lib):
    T = mp if lib is nn else torch

    def kinds(seq):
        return [type(m).__name__ for m in seq]

    seq = lib.Sequential(lib.Linear(2, 4), lib.ReLU(), lib.Linear(4, 3), lib.Tanh())
    head = seq[:2]
    assert type(head) is lib.Sequential and kinds(head) == ["Linear", "ReLU"]
    assert head(T.ones(1, 2)).shape == (1, 4)
    assert list(seq[2:].state_dict()) == ["2.weight", "2.bias"]  # the names are kept
    seq[-1] = lib.Sigmoid()
    assert kinds(seq) == ["Linear", "ReLU", "Linear", "Sigmoid"]
    del seq[1]
    assert kinds(seq) == ["Linear", "Linear", "Sigmoid"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]  # renumbered
    assert type(seq.pop(2)).__name__ == "Sigmoid" and len(seq) == 2
    both = seq + lib.Sequential(lib.ReLU())
    assert kinds(both) == ["Linear", "Linear", "ReLU"] and len(seq) == 2
    seq += lib.Sequential(lib.ELU())
    assert kinds(seq) == ["Linear", "Linear", "ELU"]
    assert kinds(lib.Sequential(lib.ReLU()) * 2) == ["ReLU", "ReLU"]
    with pytest.raises(IndexError):
        seq[3]
    with pytest.raises(IndexError):
        seq[-4] = lib.ReLU()
    with pytest.raises(TypeError):
        seq["a"]


@pytest.mark.parametrize("name,args,shape", [
    ("ZeroPad1d", ((1, 2),), (2, 3, 5)), ("ConstantPad1d", ((2, 1), 0.5), (2, 3, 5)),
    ("ReflectionPad1d", (2,), (2, 3, 5)), ("ReplicationPad1d", ((0, 3),), (3, 5)),
    ("CircularPad1d", (1,), (2, 3, 5)), ("CircularPad2d", ((1, 2, 0, 1),), (2, 3, 4, 5)),
    ("ReflectionPad2d", (1,), (2, 3, 4, 5)), ("ConstantPad2d", (1, -1.0), (1, 4, 5))])
def test_padding_layers_as_torch(name, args, shape):
    x = np.random.default_rng(5).standard_normal(shape)
    mine, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(mine) == repr(theirs)
    np.testing.assert_array_equal(mine(mp.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy())
    with pytest.raises(TypeError, match="padding"):
        getattr(nn, name)(*((1.5,) + args[1:]))


@pytest.mark.parametrize("name,shape", [("Dropout1d", (8, 6, 5)), ("Dropout3d", (4, 6, 2, 3, 3))])
def test_channel_dropout_of_other_ranks(name, shape):
    layer = getattr(nn, name)(0.5)
    assert repr(layer) == repr(getattr(torch.nn, name)(0.5))
    y = layer(mp.ones(*shape)).numpy().reshape(shape[0] * shape[1], -1)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert (y.min(axis=1) == y.max(axis=1)).all()  # whole channels kept or dropped
    layer.eval()
    np.testing.assert_array_equal(layer(mp.ones(*shape)).numpy(), 1.0)


def test_pool_layers_store_the_stride_as_torch_and_missing_layers_say_so():
    for name, args in (("MaxPool2d", (2,)), ("AvgPool2d", (3,)), ("MaxPool1d", (3,)),
                       ("MaxPool2d", ((2, 3),))):
        mine, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
        assert mine.stride == theirs.stride and repr(mine) == repr(theirs)
    with pytest.raises(AttributeError, match="tiny CNNs use"):
        nn.LSTM


@pytest.mark.parametrize("lib", [nn, torch.nn], ids=["minipool", "torch"])
def test_named_parameters_can_list_a_shared_layer_twice(lib):
    shared = lib.Linear(2, 2)
    net = lib.Sequential(shared, lib.ReLU(), shared)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in net.named_parameters(remove_duplicate=False)] == \
        ["0.weight", "0.bias", "2.weight", "2.bias"]


@pytest.mark.parametrize("lib", [nn, torch.nn], ids=["minipool", "torch"])
def test_load_state_dict_assign_takes_the_arrays_themselves(lib):
    T = mp if lib is nn else torch
    layer = lib.Linear(2, 3)
    state = {"weight": T.ones(3, 2, dtype=T.float64), "bias": T.zeros(3, dtype=T.float64)}
    layer.load_state_dict(state, assign=True)
    assert layer.weight.dtype == T.float64 and layer.weight.requires_grad
    assert np.shares_memory(layer.weight.detach().numpy(), state["weight"].numpy())
    layer.load_state_dict({"weight": T.full((3, 2), 2.0, dtype=T.float64),
                           "bias": T.zeros(3, dtype=T.float64)})
    assert state["weight"][0, 0].item() == 2.0  # the assigned memory took the copy
