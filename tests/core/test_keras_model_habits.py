"""A Keras user's model code on minipool's Keras layers: ``model.add(layer)``,
``model(x, training=False)`` and the Model methods (``compile``/``fit``/``predict``/...).
Before: ``add`` and ``training=`` were a TypeError/AttributeError that named nothing, and
``model.fit`` a bare AttributeError."""
import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn


def _model():
    mp.manual_seed(0)
    model = nn.Sequential()
    model.add(nn.Dense(6, activation="relu", input_dim=3))
    model.add(nn.BatchNormalization())
    model.add(nn.Dropout(0.5))
    model.add(nn.Dense(2))
    return model


def test_add_appends_as_keras_sequential_add():
    model = _model()
    assert [type(m).__name__ for m in model] == ["Dense", "BatchNormalization", "Dropout", "Dense"]
    assert [name for name, _ in model.named_children()] == ["0", "1", "2", "3"]


def test_training_call_argument_sets_the_mode_for_that_call_only():
    x = mp.tensor(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    model = _model()
    inference = model(x, training=False).numpy()
    assert model.training and all(m.training for m in model.modules())  # modes restored
    moving = model[1].get_weights()[2:]
    model.eval()
    np.testing.assert_array_equal(inference, model(x).numpy())  # = eval mode, no dropout
    for before, after in zip(moving, model[1].get_weights()[2:]):
        np.testing.assert_array_equal(before, after)  # training=False updated nothing
    model(x, training=True)  # batch statistics: the moving mean moves towards the batch's
    assert not model.training and not model[1].training
    assert not np.array_equal(moving[0], model[1].get_weights()[2])
    np.testing.assert_array_equal(model(x, training=None).numpy(), model(x).numpy())
    with pytest.raises(TypeError, match="training must be True, False or None"):
        model(x, training="no")

    class Net(nn.Module):  # a forward with its own training argument receives it
        def forward(self, x, training=False):
            return x * (2 if training else 3)
    net = Net()
    assert net(mp.ones(1), training=True).tolist() == [2.0] and net.training


@pytest.mark.parametrize("method,way", [("compile", "mp.optim.Adam"), ("fit", "loss.backward()"),
                                        ("predict", "mp.no_grad()"), ("summary", "mp.summary(model"),
                                        ("evaluate", "model.eval()"), ("save_weights", "mp.save"),
                                        ("layers", "model.children()")])
def test_keras_model_methods_name_the_minipool_way(method, way):
    with pytest.raises(AttributeError, match="a Keras Model method") as info:
        getattr(_model(), method)
    assert way in str(info.value)
    assert not hasattr(_model(), method)
    with pytest.raises(AttributeError, match="^'Sequential' object has no attribute 'nope'$"):
        _model().nope  # other missing attributes: the plain message
