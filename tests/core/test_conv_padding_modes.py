"""``nn.Conv2d``/``nn.Conv1d`` with ``padding_mode="reflect"|"replicate"|"circular"`` (image
models: style transfer, U-Nets, pix2pix): PyTorch pads with ``F.pad`` and convolves with
padding 0; minipool refused every mode but "zeros" (a ValueError at construction)."""
import numpy as np
import pytest

import minipool as mp
from minipool import interop

torch = pytest.importorskip("torch")

MODES = ("reflect", "replicate", "circular")


def _pair(mp_layer, torch_layer):
    torch_layer.load_state_dict({k: torch.tensor(v.numpy()) for k, v in mp_layer.state_dict().items()})
    assert repr(mp_layer) == repr(torch_layer)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding,kernel,dilation,stride", [
    (1, 3, 1, 1), ((2, 1), 3, 1, 2), ("same", 4, 1, 1), ("same", 3, 2, 1), (2, 3, 2, 1),
    ("valid", 3, 1, 2)])  # "valid" pads nothing in any mode (it once failed in F.pad)
def test_conv2d_padding_modes_match_torch(mode, padding, kernel, dilation, stride):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8))
    args = (3, 4, kernel)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, padding_mode=mode)
    mine = mp.nn.Conv2d(*args, **kwargs, dtype=mp.float64)
    theirs = torch.nn.Conv2d(*args, **kwargs, dtype=torch.float64)
    _pair(mine, theirs)
    xm, xt = mp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_m, out_t = mine(xm), theirs(xt)
    weight = np.cos(np.arange(out_t.numel())).reshape(tuple(out_t.shape))
    (out_m * mp.tensor(weight)).sum().backward()
    (out_t * torch.tensor(weight)).sum().backward()
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mine.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-10)
    nhwc = mp.nn.Conv2d(*args, **kwargs, dtype=mp.float64, data_format="channels_last")
    nhwc.load_state_dict(mine.state_dict())
    np.testing.assert_allclose(nhwc(mp.tensor(x.transpose(0, 2, 3, 1))).numpy(),
                               out_t.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", [2, "same", "valid"])
def test_conv1d_padding_modes_match_torch(mode, padding):
    x = np.random.default_rng(1).standard_normal((2, 3, 6))
    mine = mp.nn.Conv1d(3, 2, 3, padding=padding, padding_mode=mode, dtype=mp.float64)
    theirs = torch.nn.Conv1d(3, 2, 3, padding=padding, padding_mode=mode, dtype=torch.float64)
    _pair(mine, theirs)
    np.testing.assert_allclose(mine(mp.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_interop_carries_the_padding_mode_and_transposed_refuses_it():
    model = mp.nn.Sequential(mp.nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), mp.nn.ReLU())
    twin = interop.to_torch(model, torch)
    x = np.random.default_rng(2).standard_normal((1, 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(model(mp.tensor(x)).numpy(), twin(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: padding_mode must be one of \('zeros',\)"):
        mp.nn.ConvTranspose2d(2, 3, 3, padding_mode="reflect")  # PyTorch: zeros only too
