"""A Sequential that mixes a Keras-named layer (Conv2D, MaxPooling2D, BatchNormalization:
channels_last) with a PyTorch-named one (Conv2d, MaxPool2d, BatchNorm2d: channels_first).
One letter apart (MaxPool2D vs MaxPool2d), and when the sizes happen to fit nothing failed:
BatchNorm2d normalised over H, MaxPool2d pooled over (W, C) -- silent wrong results.  Now the
Sequential names the layer and the data_format to give it."""
import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn


def test_keras_conv_then_torch_layers_is_refused_naming_data_format():
    model = nn.Sequential(nn.Conv2D(8, 3, input_shape=(10, 10, 1)), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Dense(3))
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm2d\) reads channels_first input, but "
                                         r"layer 0 \(Conv2D\) gives channels_last: give BatchNorm2d "
                                         r"data_format='channels_last'"):
        model(mp.randn(2, 10, 10, 1))  # 10x10 -> 8x8x8: every shape fits, the axes do not
    model = nn.Sequential(nn.Conv2D(8, 3, input_shape=(10, 10, 1)), nn.ReLU(), nn.MaxPool2d(2))
    with pytest.raises(ValueError, match=r"layer 2 \(MaxPool2d\) .* layer 0 \(Conv2D\)"):
        model(mp.randn(2, 10, 10, 1))  # through the layout-neutral ReLU


def test_torch_conv_then_keras_layers_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPooling2D(2))
    with pytest.raises(ValueError, match=r"MaxPooling2D\) reads channels_last input, but layer 0 "
                                         r"\(Conv2d\) gives channels_first"):
        model(mp.randn(2, 1, 9, 9))
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNormalization())
    with pytest.raises(ValueError, match="or axis= for BatchNormalization"):
        model(mp.randn(2, 1, 9, 9))
    # consistent or explicit layouts run, and the explicit one computes what Keras's does
    x = np.random.default_rng(0).standard_normal((2, 10, 10, 1)).astype(np.float32)
    keras = nn.Sequential(nn.Conv2D(4, 3, input_shape=(10, 10, 1)), nn.BatchNormalization(axis=-1),
                          nn.MaxPool2D(2), nn.GlobalAveragePooling2D(), nn.Dense(3))
    mixed = nn.Sequential(keras[0], nn.BatchNorm2d(4, data_format="channels_last"),
                          nn.MaxPool2d(2, data_format="channels_last"), nn.AdaptiveAvgPool2d(1, data_format="channels_last"),
                          nn.Flatten(), keras[4])
    keras.eval()
    mixed.eval()
    mixed[1].eps = keras[1].epsilon  # the same normalisation, PyTorch-named
    np.testing.assert_allclose(mixed(mp.tensor(x)).numpy(), keras(mp.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    torch_style = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
    assert torch_style(mp.tensor(x.transpose(0, 3, 1, 2))).shape == (2, 4, 4, 4)


def test_a_user_layer_that_changes_the_layout_is_trusted():
    class ToChannelsFirst(nn.Module):
        def forward(self, x):
            return x.permute(0, 3, 1, 2)
    # (2, 8, 8, 8) -> (2, 8, 8, 8): the shape does not show the permutation; the user's layer
    # is not a minipool layer, so the layout is unknown after it and nothing is refused
    model = nn.Sequential(nn.Conv2D(8, 3, input_shape=(10, 10, 1)), ToChannelsFirst(),
                          nn.MaxPool2d(2))
    assert model(mp.randn(2, 10, 10, 1)).shape == (2, 8, 4, 4)
    with pytest.raises(ValueError, match="MaxPool2d"):  # while the same without it is refused
        nn.Sequential(model[0], model[2])(mp.randn(2, 10, 10, 1))
