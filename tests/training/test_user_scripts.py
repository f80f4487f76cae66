"""Whole scripts written the way PyTorch and Keras users write them, end to end.

Each one is what a user would type from habit; it must run, learn, and give the
same numbers again from the same seed and after a save/load round trip.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F


def pytorch_style_run(path, seed=0, epochs=2):
    mp.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(16 * 7 * 7, 10))
    optimizer = mp.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = mp.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    train = mp.data.SyntheticDigits(768, seed=1)
    loader = mp.data.DataLoader(train, batch_size=64, shuffle=True)
    losses = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
            optimizer.step()
            total += loss.item()
        scheduler.step()
        losses.append(total / len(loader))
    mp.save(model.state_dict(), path)
    model.eval()
    test = mp.data.SyntheticDigits(256, seed=2)
    with mp.no_grad():
        x, y = test.get_batch(np.arange(256))
        logits = model(x)
        values, predicted = logits.max(dim=1)
        accuracy = (predicted == y).float().mean().item()
    return model, losses, logits.numpy(), accuracy


def test_pytorch_style_script_learns_reproduces_and_round_trips(tmp_path):
    model, losses, logits, accuracy = pytorch_style_run(tmp_path / "a.safetensors")
    assert losses[-1] < losses[0] and accuracy > 0.5, (losses, accuracy)
    _, losses_again, logits_again, _ = pytorch_style_run(tmp_path / "b.safetensors")
    assert losses_again == losses
    np.testing.assert_array_equal(logits_again, logits)
    # a fresh model of the same shape, loaded from the file, computes the same logits
    mp.manual_seed(123)
    fresh = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(16 * 7 * 7, 10))
    fresh.load_state_dict(mp.load(tmp_path / "a.safetensors"))
    fresh.eval()
    test = mp.data.SyntheticDigits(256, seed=2)
    with mp.no_grad():
        x, _ = test.get_batch(np.arange(256))
        np.testing.assert_array_equal(fresh(x).numpy(), logits)


def test_hand_written_sgd_step_updates_the_weights():
    # the micrograd / PyTorch-tutorial habit: update parameters by hand under no_grad
    mp.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = mp.randn(32, 4), mp.randn(32, 1)
    before = model.weight.numpy().copy()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    with mp.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    np.testing.assert_allclose(model.weight.numpy(), before - 0.1 * model.weight.grad.numpy(), rtol=1e-6)
    model.zero_grad()
    assert model.weight.grad is None  # set_to_none, as PyTorch


def test_keras_style_script_builds_lazily_and_learns():
    mp.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2D(8, 3, padding="same", activation="relu"),   # channels_last, input channels found on first call
        nn.MaxPool2D(2, strides=2),
        nn.Conv2D(16, 3, padding="same"), nn.BatchNormalization(), nn.ReLU(max_value=6.0),
        nn.MaxPool2D(pool_size=2, strides=2, padding="valid"),
        nn.UpSampling2D(size=2),
        nn.GlobalAveragePooling2D(),
        nn.Dense(10))
    model(mp.zeros(2, 28, 28, 1))  # builds the lazy layers, as Keras's first call does
    optimizer = mp.optim.Adam(model.parameters(), lr=3e-3)
    train = mp.data.SyntheticDigits(512, seed=3)
    loader = mp.data.DataLoader(train, batch_size=64, shuffle=True)
    first = last = None
    for _ in range(3):
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x.permute(0, 2, 3, 1)), y)  # NCHW digits to NHWC
            loss.backward()
            optimizer.step()
            first = loss.item() if first is None else first
            last = loss.item()
    assert last < first, (first, last)


@pytest.mark.parametrize("habit, message", [
    (lambda: mp.zeros(2, 2).to("cuda"), "CPU"),
])
def test_habits_that_cannot_work_say_so(habit, message):
    with pytest.raises(Exception, match=message):
        habit()
