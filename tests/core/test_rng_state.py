"""``mp.get_rng_state`` / ``mp.set_rng_state``: PyTorch's checkpoint habit for resuming a
run with dropout bit for bit (``torch.get_rng_state()`` saved beside the model and optimiser).
Before, both were an AttributeError, and a resumed run drew other dropout masks."""
import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F


def _steps(model, optimizer, x, y, n):
    losses = []
    for _ in range(n):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_resume_with_dropout_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    x, y = mp.tensor(rng.random((8, 5), dtype=np.float32)), mp.tensor(rng.integers(0, 3, 8))

    def build():
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        return model, mp.optim.Adam(model.parameters(), lr=0.01)

    mp.manual_seed(0)
    model, optimizer = build()
    _steps(model, optimizer, x, y, 3)
    mp.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": mp.get_rng_state()}, tmp_path / "checkpoint.pt")
    straight_on = _steps(model, optimizer, x, y, 4)

    mp.manual_seed(123)  # another process, another seed
    model, optimizer = build()
    checkpoint = mp.load(tmp_path / "checkpoint.pt")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    mp.set_rng_state(checkpoint["rng"])
    assert _steps(model, optimizer, x, y, 4) == straight_on


def test_state_restores_every_default_draw():
    mp.manual_seed(5)
    state = mp.get_rng_state()
    assert state.dtype == mp.uint8 and state.ndim == 1  # torch's ByteTensor shape
    first = (mp.randn(3).numpy(), F.dropout(mp.ones(20), 0.5).numpy(), mp.randperm(6).numpy())
    mp.set_rng_state(state)
    again = (mp.randn(3).numpy(), F.dropout(mp.ones(20), 0.5).numpy(), mp.randperm(6).numpy())
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [mp.zeros(4), mp.tensor(np.frombuffer(b"not json", np.uint8).copy()),
                                 "state"])
def test_set_rng_state_refuses_other_values(bad):
    with pytest.raises(ValueError, match=r"set_rng_state: new_state must be a uint8 Tensor from mp.get_rng_state\(\)"):
        mp.set_rng_state(bad)
