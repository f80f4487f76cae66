"""mp.summary: rows, shapes, parameter and multiply-add counts, folding by depth, no side effects;
and the forward hooks it runs on (Module.register_forward_hook / register_forward_pre_hook)."""
import numpy as np
import pytest

import minipool as mp
from minipool.models import LeNet5
from minipool.summary import ModelSummary

nn = mp.nn


def small_cnn():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(8, 4, 3, groups=2), nn.ReLU(), nn.AvgPool2d(2)),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 3 * 3, 5))


def test_lenet5_counts_by_hand():
    s = mp.summary(LeNet5(), (2, 1, 32, 32), verbose=0)
    # parameters: weights + biases of conv1, conv2, fc1, fc2, fc3
    by_hand = (6 * 1 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert s.total_params == s.trainable_params == by_hand == 61706
    # multiply-adds per image: output cells x weights feeding each cell
    per_image = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 120 * 400 + 84 * 120 + 10 * 84
    assert s.total_mult_adds == 2 * per_image
    rows = {r.name: r for r in s.layers}
    assert [r.name for r in s.layers] == ["", "conv1", "conv2", "fc1", "fc2", "fc3"]
    assert rows["conv1"].output_shapes == [[2, 6, 28, 28]] and rows["conv2"].output_shapes == [[2, 16, 10, 10]]
    assert rows[""].output_shapes == [[2, 10]] and rows[""].type == "LeNet5"
    assert rows["conv2"].num_params == 16 * 150 + 16 and rows["conv2"].mult_adds == 2 * 16 * 100 * 150
    assert rows["fc1"].mult_adds == 2 * 120 * 400


def test_nested_sequential_rows_depth_and_grouped_conv():
    s = mp.summary(small_cnn(), (1, 3, 16, 16), verbose=0)
    names = [(r.depth, r.name, r.type) for r in s.layers]
    assert names == [(0, "", "Sequential"), (1, "0", "Sequential"), (2, "0", "Conv2d"), (2, "1", "ReLU"),
                     (2, "2", "MaxPool2d"), (1, "1", "Sequential"), (2, "0", "Conv2d"), (2, "1", "ReLU"),
                     (2, "2", "AvgPool2d"), (1, "2", "Flatten"), (1, "3", "Dropout"), (1, "4", "Linear")]
    conv_a, conv_b = s.layers[2], s.layers[6]
    assert conv_a.output_shapes == [[1, 8, 16, 16]] and conv_a.mult_adds == 8 * 16 * 16 * (3 * 9)
    assert conv_b.output_shapes == [[1, 4, 6, 6]] and conv_b.mult_adds == 4 * 6 * 6 * (4 * 9)  # groups=2
    assert s.layers[-1].mult_adds == 5 * 36
    assert s.total_params == (8 * 27 + 8) + (4 * 4 * 9 + 4) + (36 * 5 + 5)
    assert s.total_mult_adds == conv_a.mult_adds + conv_b.mult_adds + 5 * 36
    # containers own nothing themselves
    assert s.layers[1].num_params == 0 and s.layers[1].mult_adds == 0


def test_depth_folds_deeper_rows_into_their_ancestor():
    full = mp.summary(small_cnn(), (1, 3, 16, 16), verbose=0)
    s = mp.summary(small_cnn(), (1, 3, 16, 16), depth=1, verbose=0)
    assert [r.name for r in s.layers] == ["", "0", "1", "2", "3", "4"]
    assert s.layers[1].num_params == 8 * 27 + 8 and s.layers[1].mult_adds == full.layers[2].mult_adds
    assert s.layers[2].num_params == 4 * 4 * 9 + 4
    assert (s.total_params, s.total_mult_adds) == (full.total_params, full.total_mult_adds)
    top = mp.summary(small_cnn(), (1, 3, 16, 16), depth=0, verbose=0)
    assert len(top.layers) == 1 and top.layers[0].num_params == full.total_params
    assert top.layers[0].mult_adds == full.total_mult_adds


def test_trainable_shared_and_frozen_parameters():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 2))
    net[3].weight.requires_grad = False
    s = mp.summary(net, (3, 4), verbose=0)
    assert s.total_params == 20 + 10                 # the shared layer once
    assert s.trainable_params == 20 + 2 and s.non_trainable_params == 8
    row = s.layers[1]
    assert row.calls == 2 and row.output_shapes == [[3, 4], [3, 4]]
    assert row.mult_adds == 2 * 3 * 4 * 4            # both calls counted
    assert len(s.layers) == 4                         # one row for the shared module
    assert "(x2)" in str(s)


def test_table_text_and_printing(capsys):
    s = mp.summary(LeNet5(), (1, 1, 32, 32))
    printed = capsys.readouterr().out
    assert isinstance(s, ModelSummary) and printed.strip() == str(s).strip() == repr(s).strip()
    for piece in ("Layer (type)", "Output Shape", "Param #", "Mult-Adds", "conv1 (Conv2d)",
                  "[1, 16, 10, 10]", "48,120", "Total params: 61,706", "Trainable params: 61,706",
                  "Non-trainable params: 0", "Total mult-adds: 416,520 (0.42 M)"):
        assert piece in printed, piece
    mp.summary(LeNet5(), (1, 1, 32, 32), verbose=0)
    assert capsys.readouterr().out == ""


def test_tuple_outputs_multiple_inputs_dtype_and_input_data():
    s = mp.summary(nn.MaxPool2d(2, return_indices=True), (1, 2, 4, 4), verbose=0)
    assert s.layers[0].output_shapes == [[[1, 2, 2, 2], [1, 2, 2, 2]]]

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2, dtype=np.float64)

        def forward(self, a, b):
            assert a.dtype == np.float64
            return self.fc(a + b)
    s = mp.summary(Two(), [(5, 3), (5, 3)], verbose=0)      # dtype from the parameters
    assert s.input_shapes == [[5, 3], [5, 3]] and s.layers[1].output_shapes == [[5, 2]]
    s = mp.summary(Two(), input_data=[np.ones((4, 3)), mp.ones(4, 3, dtype=np.float64)], verbose=0)
    assert s.layers[0].output_shapes == [[4, 2]]
    s = mp.summary(nn.ReLU(), (2,), dtype=mp.float64 if hasattr(mp, "float64") else np.float64, verbose=0)
    assert s.layers[0].output_shapes == [[2]]


def test_summary_leaves_the_model_as_it_was():
    layers = [nn.Conv2d(1, 2, 3), nn.ReLU(), nn.StochasticPool2d(2), nn.Dropout(0.5)]
    if hasattr(nn, "BatchNorm2d"):
        layers.insert(1, nn.BatchNorm2d(2))
    net = nn.Sequential(*layers)
    net.train()
    net[1].eval()
    before_state = {k: v.clone() for k, v in net.state_dict().items()}
    mp.manual_seed(0)
    rng_before = mp.default_generator().bit_generator.state
    mp.summary(net, (2, 1, 6, 6), verbose=0)
    assert mp.default_generator().bit_generator.state == rng_before       # nothing drawn
    assert [m.training for m in net.modules()] == [True, True, False] + [True] * (len(layers) - 2)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before_state[k], err_msg=k)      # running stats untouched
    assert all(not m.__dict__.get("_forward_hooks", {}).get("post") for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


def test_output_shapes_and_counts_match_pytorch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    theirs = tnn.Sequential(
        tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2)),
        tnn.Sequential(tnn.Conv2d(8, 4, 3, groups=2), tnn.ReLU(), tnn.AvgPool2d(2)),
        tnn.Flatten(), tnn.Dropout(0.5), tnn.Linear(36, 5))
    shapes = {}

    def remember(name):
        def hook(mod, args, out):
            shapes[name] = list(out.shape)
        return hook
    for name, m in theirs.named_modules():
        m.register_forward_hook(remember(name))
    theirs(torch.zeros(2, 3, 16, 16))
    s = mp.summary(small_cnn(), (2, 3, 16, 16), verbose=0)
    full_names = ["", "0", "0.0", "0.1", "0.2", "1", "1.0", "1.1", "1.2", "2", "3", "4"]
    assert [r.output_shapes[0] for r in s.layers] == [shapes[n] for n in full_names]
    assert s.total_params == sum(p.numel() for p in theirs.parameters())
    for row, name in zip(s.layers, full_names):
        module = theirs.get_submodule(name) if name else theirs
        assert row.num_params == sum(p.numel() for p in module.parameters(recurse=False)), name


@pytest.mark.parametrize("kwargs,err,msg", [
    (dict(model=object(), input_size=(1, 2)), TypeError, "must be a minipool.nn.Module"),
    (dict(input_size=None), ValueError, "exactly one of input_size and input_data"),
    (dict(input_size=(1, 4), input_data=np.ones((1, 4))), ValueError, "exactly one"),
    (dict(input_size=(1, 0)), ValueError, "dimensions must be >= 1"),
    (dict(input_size=(1, -4)), ValueError, "dimensions must be >= 1"),
    (dict(input_size=(1, 4.0)), ValueError, "input_size must be a shape"),
    (dict(input_size=()), ValueError, "input_size must be a shape"),
    (dict(input_size=[(1, 4), "x"]), ValueError, "input_size must be a shape"),
    (dict(input_size=(1, True)), ValueError, "input_size must be a shape"),
    (dict(input_size=(2 ** 20, 2 ** 10)), ValueError, "limit is 2\\*\\*28"),
    (dict(input_size=(1, 4), depth=-1), ValueError, "depth must be"),
    (dict(input_size=(1, 4), verbose=3), ValueError, "verbose must be"),
    (dict(input_size=(1, 4), dtype="U3"), TypeError, "numeric dtype"),
    (dict(input_size=(1, 5)), RuntimeError, r"forward pass of Sequential .*\(1, 5\).*failed after the layers \[\]"),
])
def test_bad_input(kwargs, err, msg):
    kwargs.setdefault("model", nn.Sequential(nn.Linear(4, 2), nn.ReLU()))
    kwargs.setdefault("verbose", 0)
    with pytest.raises(err, match=msg):
        mp.summary(**kwargs)


def test_failed_pass_names_the_layers_run_and_cleans_up():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(4, 2))
    net.train()
    with pytest.raises(RuntimeError, match=r"failed after the layers \['0', '1'\]: ValueError: linear"):
        mp.summary(net, (1, 4), verbose=0)
    assert all(m.training for m in net.modules())
    assert all(not m.__dict__.get("_forward_hooks", {}).get("post") for m in net.modules())


# ------------------------------------------------------------------ the hooks themselves
def test_forward_hook_sees_args_and_output_and_can_replace_it():
    lin = nn.Linear(2, 2)
    calls = []
    h = lin.register_forward_hook(lambda m, args, out: calls.append((m, args, out)))
    x = mp.ones(1, 2)
    y = lin(x)
    assert calls[0][0] is lin and calls[0][1][0] is x and calls[0][2] is y
    h.remove()
    h.remove()  # twice is harmless
    lin(x)
    assert len(calls) == 1
    with lin.register_forward_hook(lambda m, args, out: out * 0):
        assert (lin(x).numpy() == 0).all()
    assert not (lin(x).numpy() == 0).all() or (lin.weight.numpy() == 0).all()


def test_pre_hooks_run_first_and_can_replace_args_and_hooks_run_in_order():
    relu = nn.ReLU()
    order = []
    relu.register_forward_pre_hook(lambda m, args: order.append("pre") or (args[0] * -1,))
    relu.register_forward_hook(lambda m, args, out: order.append("a"))
    relu.register_forward_hook(lambda m, args, out: order.append("b") or out + 1)
    out = relu(mp.tensor([-2.0, 3.0]))
    assert order == ["pre", "a", "b"]
    np.testing.assert_array_equal(out.numpy(), [3.0, 1.0])


def test_hooks_reject_non_callables_and_gradients_flow_through_hooked_modules():
    with pytest.raises(TypeError, match="hook must be callable"):
        nn.ReLU().register_forward_hook(3)
    with pytest.raises(TypeError, match="hook must be callable"):
        nn.ReLU().register_forward_pre_hook(None)
    lin = nn.Linear(3, 1)
    lin.register_forward_hook(lambda m, a, out: out * 2)
    x = mp.ones(1, 3, requires_grad=True)
    lin(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * lin.weight.numpy())
