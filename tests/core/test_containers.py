"""nn.ModuleList and nn.ModuleDict: registration (parameters, state_dict, train/eval),
list and dict operations, PyTorch's state_dict keys, and named errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(3, 3, bias=False) for _ in range(2)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(3, 2), "drop": nn.Dropout(0.5)})

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.heads["cls"](x)


def test_children_are_registered_with_pytorchs_keys():
    torch = pytest.importorskip("torch")
    ours = Tower()
    keys = list(ours.state_dict())
    assert keys == ["blocks.0.weight", "blocks.1.weight", "heads.cls.weight", "heads.cls.bias"]

    class TorchTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(3, 3, bias=False) for _ in range(2)])
            self.heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(3, 2), "drop": torch.nn.Dropout(0.5)})

    assert keys == list(TorchTower().state_dict())
    assert len(list(ours.parameters())) == 4
    ours.eval()
    assert not ours.blocks[1].training and not ours.heads["drop"].training
    ours.train()
    assert all(m.training for m in ours.modules())
    y = ours(mp.ones((5, 3)))
    y.sum().backward()
    assert all(p.grad is not None for p in ours.parameters())
    copy = Tower()
    copy.load_state_dict(ours.state_dict())
    for a, b in zip(copy.parameters(), ours.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_module_list_operations_follow_python_lists():
    a, b, c, d = (nn.ReLU() for _ in range(4))
    ml = nn.ModuleList([a, b])
    assert len(ml) == 2 and ml[0] is a and ml[-1] is b and list(ml) == [a, b]
    ml.append(c)
    assert ml[2] is c
    ml.extend([d])
    assert list(ml) == [a, b, c, d]
    ml.insert(1, nn.Tanh())
    assert [type(m).__name__ for m in ml] == ["ReLU", "Tanh", "ReLU", "ReLU", "ReLU"]
    assert list(dict(ml.named_children())) == ["0", "1", "2", "3", "4"]
    del ml[1]
    assert list(ml) == [a, b, c, d] and list(dict(ml.named_children())) == ["0", "1", "2", "3"]
    sub = ml[1:3]
    assert isinstance(sub, nn.ModuleList) and list(sub) == [b, c]
    ml[0] = nn.Sigmoid()
    assert type(ml[0]).__name__ == "Sigmoid"
    del ml[::2]
    assert list(ml) == [b, d]
    ml += nn.ModuleList([a])
    assert list(ml) == [b, d, a]
    assert list(ml + nn.ModuleList([c])) == [b, d, a, c]
    assert repr(nn.ModuleList([nn.ReLU()])) == "ModuleList(\n  (0): ReLU()\n)"


def test_module_list_parameters_follow_edits():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    del ml[0]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias"]
    assert ml[0].out_features == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "insert", "delete", "set"]), st.integers(-6, 6)),
                max_size=12))
def test_property_module_list_behaves_like_a_list(ops):
    model, ml = [], nn.ModuleList()
    for op, i in ops:
        m = nn.Identity()
        if op == "append":
            model.append(m)
            ml.append(m)
        elif op == "insert":
            model.insert(i, m)
            ml.insert(i, m)
        elif op == "delete":
            if -len(model) <= i < len(model):
                del model[i]
                del ml[i]
            else:
                with pytest.raises(IndexError):
                    del ml[i]
        else:
            if -len(model) <= i < len(model):
                model[i] = m
                ml[i] = m
            else:
                with pytest.raises(IndexError):
                    ml[i] = m
        assert len(ml) == len(model) and all(x is y for x, y in zip(ml, model))
        assert list(ml._modules) == [str(k) for k in range(len(model))]


def test_module_dict_operations_follow_python_dicts():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    md = nn.ModuleDict([("a", a), ("b", b)])
    assert list(md.keys()) == ["a", "b"] and list(md.values()) == [a, b]
    assert list(md.items()) == [("a", a), ("b", b)] and list(md) == ["a", "b"]
    assert "a" in md and "z" not in md and len(md) == 2
    md.update({"c": c, "a": b})
    assert list(md.keys()) == ["a", "b", "c"] and md["a"] is b
    md["d"] = nn.ReLU()
    assert len(md) == 4
    assert md.pop("b") is b and "b" not in md
    del md["c"]
    assert list(md) == ["a", "d"]
    md.update(nn.ModuleDict({"e": nn.ReLU()}))
    assert list(md) == ["a", "d", "e"]
    md.clear()
    assert len(md) == 0 and list(md.parameters()) == []
    with pytest.raises(KeyError):
        md["missing"]
    with pytest.raises(KeyError):
        del md["missing"]
    assert repr(nn.ModuleDict({"x": nn.ReLU()})) == "ModuleDict(\n  (x): ReLU()\n)"


@pytest.mark.parametrize("call,exc,words", [
    (lambda: nn.ModuleList([nn.ReLU(), 3]), TypeError, "Module"),
    (lambda: nn.ModuleList(5), TypeError, "iterable"),
    (lambda: nn.ModuleList([nn.ReLU()])["0"], TypeError, "integers or slices"),
    (lambda: nn.ModuleList([nn.ReLU()])[1], IndexError, "out of range"),
    (lambda: nn.ModuleList().append("relu"), TypeError, "Module"),
    (lambda: nn.ModuleList()(mp.ones(1)), NotImplementedError, "iterate"),
    (lambda: nn.ModuleDict({"a": 1}), TypeError, "Module"),
    (lambda: nn.ModuleDict({1: nn.ReLU()}), TypeError, "strings"),
    (lambda: nn.ModuleDict({"a.b": nn.ReLU()}), KeyError, "'.'"),
    (lambda: nn.ModuleDict({"train": nn.ReLU()}), KeyError, "clashes"),
    (lambda: nn.ModuleDict({"_modules": nn.ReLU()}), KeyError, "clashes"),
    (lambda: nn.ModuleDict({"training": nn.ReLU()}), KeyError, "clashes"),
    (lambda: nn.ModuleDict([("a",)]), ValueError, "pair"),
    (lambda: nn.ModuleDict(3), TypeError, "mapping"),
    (lambda: nn.ModuleDict()(mp.ones(1)), NotImplementedError, "forward"),
])
def test_bad_uses_raise_named_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
