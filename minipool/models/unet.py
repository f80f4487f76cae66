"""TinyUNet: a tiny U-Net-style network for 2x super-resolution, with the upsampling selectable.

``decoder`` chooses how the network goes from 14x14 to 28x28 (or any H x W to
2H x 2W):

* fixed interpolation, no parameters and no training: ``"nearest"``,
  ``"bilinear"``, ``"bicubic"`` (``F.interpolate``, align_corners=False);
* learned, inside a two-level U-Net: ``"nearest+conv"``, ``"bilinear+conv"``
  (interpolate then a 3x3 convolution), ``"transposed"`` (``ConvTranspose2d``,
  kernel 2, stride 2), ``"pixelshuffle"`` (a 3x3 convolution to 4x the
  channels, then ``pixel_shuffle(2)``), ``"maxunpool"`` (``max_unpool2d`` at
  the indices the encoder's max pooling recorded).

The learned networks first lift the input to the output size by nearest
repetition (a fixed, parameter-free step that adds no information), so the
encoder has a full-resolution level whose max-pooling indices the
``maxunpool`` decoder can use; the output is that lift plus a learned
correction::

    lift = nearest 2x (x)                                   (1, 2H, 2W)
    e1 = relu(conv3x3(lift))                                (c, 2H, 2W)
    p, idx = max_pool2d(e1, 2, return_indices=True)         (c, H, W)
    e2 = relu(conv3x3(relu(conv3x3(p))))                    (2c, H, W)
    u = relu(decoder(e2))                                   (c, 2H, 2W)
    y = lift + conv3x3(relu(conv3x3(cat(u, e1))))           (1, 2H, 2W)

>>> import minipool as mp
>>> TinyUNet("bilinear")(mp.zeros(2, 1, 14, 14)).shape
(2, 1, 28, 28)
>>> net = TinyUNet("transposed", seed=0)
>>> net(mp.zeros(2, 1, 14, 14)).shape, net.trainable
((2, 1, 28, 28), True)
"""
import numpy as np

import minipool.nn as nn
import minipool.nn.functional as F

__all__ = ["TinyUNet", "FIXED_DECODERS", "LEARNED_DECODERS"]

FIXED_DECODERS = ("nearest", "bilinear", "bicubic")
LEARNED_DECODERS = ("nearest+conv", "bilinear+conv", "transposed", "pixelshuffle", "maxunpool")


def _interpolate(x, mode):
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode=mode, align_corners=False)


class _Up(nn.Module):
    """The learned 2x step: ``channels_in`` maps at H x W -> ``channels_out`` maps at 2H x 2W."""

    def __init__(self, kind, channels_in, channels_out):
        super().__init__()
        self.kind = kind
        if kind in ("nearest+conv", "bilinear+conv"):
            self.conv = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        elif kind == "transposed":
            self.conv = nn.ConvTranspose2d(channels_in, channels_out, 2, stride=2)
        elif kind == "pixelshuffle":
            self.conv = nn.Conv2d(channels_in, 4 * channels_out, 3, padding=1)
        else:  # maxunpool: match the encoder's channels, place at its indices, then mix
            self.reduce = nn.Conv2d(channels_in, channels_out, 1)
            self.conv = nn.Conv2d(channels_out, channels_out, 3, padding=1)

    def forward(self, x, indices):
        if self.kind == "nearest+conv":
            return self.conv(_interpolate(x, "nearest"))
        if self.kind == "bilinear+conv":
            return self.conv(_interpolate(x, "bilinear"))
        if self.kind == "transposed":
            return self.conv(x)
        if self.kind == "pixelshuffle":
            return F.pixel_shuffle(self.conv(x), 2)
        return self.conv(F.max_unpool2d(self.reduce(x), indices, 2))


class TinyUNet(nn.Module):
    """2x super-resolution of 1-channel images with the ``decoder`` of your choice
    (see the module docstring).  ``channels`` sets the width of the learned networks;
    ``seed`` draws their weights (PyTorch's default bounds, uniform +-1/sqrt(fan_in));
    without it they come from the shared generator ``mp.manual_seed`` seeds."""

    # Not a classifier: ``python -m minipool train`` refuses it and names the command that trains it.
    trained_by = "python -m minipool experiment upsampling"

    name = "tiny-unet"

    def __init__(self, decoder="bilinear+conv", channels=16, seed=None):
        super().__init__()
        if decoder not in FIXED_DECODERS + LEARNED_DECODERS:
            raise ValueError(f"TinyUNet: unknown decoder {decoder!r}; choose one of: "
                             f"{', '.join(FIXED_DECODERS + LEARNED_DECODERS)}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"TinyUNet: channels must be an int >= 1, got {channels!r}")
        self.decoder, self.channels = decoder, channels
        self.trainable = decoder in LEARNED_DECODERS
        if not self.trainable:
            return
        c = channels
        self.enc1 = nn.Conv2d(1, c, 3, padding=1)
        self.enc2a = nn.Conv2d(c, 2 * c, 3, padding=1)
        self.enc2b = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.up = _Up(decoder, 2 * c, c)
        self.dec = nn.Conv2d(2 * c, c, 3, padding=1)
        self.head = nn.Conv2d(c, 1, 3, padding=1)
        from minipool import _random

        rng = np.random.default_rng(seed) if seed is not None else _random.default_generator()
        for module in (self.enc1, self.enc2a, self.enc2b, self.dec, self.head) + tuple(
                m for m in (getattr(self.up, "reduce", None), self.up.conv) if m is not None):
            fan_in = int(np.prod(module.weight.shape[1:]))  # ConvTranspose2d: (out, kh, kw) as PyTorch
            bound = 1 / np.sqrt(fan_in)
            module.weight._data = rng.uniform(-bound, bound, module.weight.shape).astype(np.float32)
            module.bias._data = rng.uniform(-bound, bound, module.bias.shape).astype(np.float32)

    @property
    def config(self):
        return {"decoder": self.decoder, "channels": self.channels}

    def forward(self, x):
        if not self.trainable:
            return _interpolate(x, self.decoder)
        lift = _interpolate(x, "nearest")
        e1 = F.relu(self.enc1(lift))
        p, idx = F.max_pool2d(e1, 2, return_indices=True)
        e2 = F.relu(self.enc2b(F.relu(self.enc2a(p))))
        u = F.relu(self.up(e2, idx))
        d = F.relu(self.dec(F.cat([u, e1], dim=1)))
        return lift + self.head(d)

    def loss(self, output, target):
        """Mean squared error against the high-resolution target images."""
        if getattr(target, "shape", None) != output.shape:
            raise ValueError(f"TinyUNet is a 2x super-resolution network: its target must be the "
                             f"high-resolution images of shape {tuple(output.shape)}, got shape "
                             f"{tuple(getattr(target, 'shape', ()))} (class labels?); train it with "
                             f"`python -m minipool experiment upsampling`")
        return F.mse_loss(output, target)

    def trainable_parameter_count(self):
        return sum(p._data.size for p in self.parameters())
