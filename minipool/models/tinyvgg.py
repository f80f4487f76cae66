"""TinyVGG: a small VGG-style CNN with batch normalisation, for 1x28x28 to 3x32x32 images.

Each block is a 3x3 convolution (padding 1, no bias: the BatchNorm's shift
replaces it), BatchNorm2d, ReLU and 2x2 max pooling; ``widths`` gives the
channels of the blocks.  The head averages each map over the image (global
average pooling) and a Linear layer gives the logits, so any input size from
8x8 up works (28x28 pools to 14, 7, 3; 32x32 to 16, 8, 4).

The layers sit in ``features`` (an ``nn.Sequential``) and ``classifier``, so the
``state_dict`` keys (``features.0.weight``, ``features.1.running_mean``, ...)
are those of the same network written with ``torch.nn.Sequential``.
"""
from collections import OrderedDict

import numpy as np

import minipool.nn as nn
import minipool.nn.functional as F

__all__ = ["TinyVGG"]


class TinyVGG(nn.Module):
    """A few conv-BN-ReLU-maxpool blocks, global average pooling and a linear head.

    ``seed`` initialises the weights reproducibly (PyTorch's default
    distributions, drawn from ``np.random.default_rng(seed)``).

    >>> import minipool as mp
    >>> net = TinyVGG(in_channels=3, num_classes=10, seed=0)
    >>> net(mp.zeros(2, 3, 32, 32)).shape
    (2, 10)
    >>> sorted(k for k in net.state_dict() if k.startswith("features.1."))
    ['features.1.bias', 'features.1.num_batches_tracked', 'features.1.running_mean', 'features.1.running_var', 'features.1.weight']
    """

    name = "tiny-vgg"

    def __init__(self, in_channels=1, num_classes=10, widths=(16, 32, 64), seed=None):
        super().__init__()
        widths = tuple(widths)
        if not widths:
            raise ValueError("TinyVGG: widths must name at least one block, got ()")
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
                raise ValueError(f"TinyVGG: widths must be positive ints, got {widths!r}")
        rng = np.random.default_rng(seed)
        layers, channels = [], in_channels
        for width in widths:
            layers += [nn.Conv2d(channels, int(width), 3, padding=1, bias=False, generator=rng),
                       nn.BatchNorm2d(int(width)), nn.ReLU(), nn.MaxPool2d(2)]
            channels = int(width)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes, generator=rng)
        self.in_channels, self.num_classes, self.widths = in_channels, num_classes, widths

    @property
    def config(self):
        return {"in_channels": self.in_channels, "num_classes": self.num_classes,
                "widths": list(self.widths)}

    def feature_maps(self, x):
        """The activations after each block (after its pooling), by name."""
        maps = OrderedDict()
        layers = list(self.features)
        for block in range(len(self.widths)):
            for layer in layers[4 * block:4 * block + 4]:
                x = layer(x)
            maps[f"block{block + 1}"] = x
        return maps

    def forward(self, x):
        x = self.features(x)
        return self.classifier(F.global_avg_pool2d(x))

    def first_layer_filters(self):
        return self.features[0].weight._data

    def trainable_parameter_count(self):
        return sum(p._data.size for p in self.parameters())
