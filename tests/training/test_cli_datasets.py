"""``python -m minipool train``: --dataset cifar10/cifar100, the dataset inferred from --data-dir
(never a silent fall-back to synthetic digits), models for 3-channel input, and --model's help."""
import gzip
import hashlib
import json
import os
import struct

import numpy as np
import pytest

import minipool.nn as nn
import minipool.nn.functional as F
from minipool import checkpoint
from minipool.cli import build_parser, main
from minipool.data import CIFAR10, CIFAR100, MNIST, FashionMNIST, transforms
from minipool.models import MODELS
from minipool.train import TrainConfig, TrainError
from minipool.train_setup import infer_dataset, make_transforms
from tests.training.test_cifar import make_cifar10, make_cifar100

TINY = ["--batch-size", "8", "--epochs", "1", "--progress", "none", "--no-plots", "--val-size", "8"]


class TinyColourNet(nn.Module):
    """A small network for any number of input channels (the trainer needs ``in_channels``)."""

    name = "tiny-colour-test"

    def __init__(self, in_channels=3, num_classes=10, seed=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, stride=2, generator=seed)
        self.fc = nn.Linear(4 * 15 * 15, num_classes, generator=seed)

    def forward(self, x):
        return self.fc(F.flatten(F.relu(self.conv(x)), 1))


@pytest.fixture
def colour_model(monkeypatch):
    monkeypatch.setitem(MODELS, TinyColourNet.name, TinyColourNet)
    return TinyColourNet.name


def run(args, capsys):
    try:
        code = main(args)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ --model help
def help_text(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_model_help_lists_every_registered_model(capsys, monkeypatch):
    text = help_text(capsys)
    for name in MODELS:
        assert name in text
    monkeypatch.setitem(MODELS, TinyColourNet.name, TinyColourNet)
    text = help_text(capsys)
    assert f"network, one of: {', '.join(MODELS)}" in text
    assert f"3-channel images: {TinyColourNet.name}" in text or f", {TinyColourNet.name}" in text
    assert "cifar10" in text and "cifar100" in text


# ------------------------------------------------------------------ training on CIFAR
def test_cifar10_run_infers_the_dataset_and_evaluates(tmp_path, capsys, colour_model):
    data = tmp_path / "data"
    arrays = make_cifar10(data, counts=(8, 8, 8, 8, 8), n_test=10)
    out = tmp_path / "run"
    code, printed, err = run(["train", *TINY, "--model", colour_model, "--data-dir", str(data),
                              "--out", str(out)], capsys)
    assert code == 0, err
    assert "on cifar10: 32 train / 8 validation / 10 test images" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "cifar10" and metrics["classes"] == list(CIFAR10.classes)
    assert metrics["test_images"] == 10 and len(metrics["confusion_matrix"]) == 10
    meta, state = checkpoint.load_checkpoint(out / "best.safetensors")
    assert meta["model"]["config"]["in_channels"] == 3
    assert state["model"]["conv.weight"].shape == (4, 3, 3, 3)
    mean, std = meta["normalization"]
    pixels = arrays["train"][0].astype(np.float64) / 255
    assert len(mean) == 3 and len(std) == 3  # per channel, from the training split only
    assert np.all(np.abs(np.array(mean) - pixels.mean(axis=(0, 2, 3))) < 0.05)
    code, printed, err = run(["evaluate", "--checkpoint", str(out / "best.safetensors"), "--data-dir", str(data)],
                             capsys)
    assert code == 0, err
    assert f"on cifar10 test (10 images): accuracy {100 * metrics['test_accuracy']:.2f}%" in printed
    # a colour checkpoint does not fit grey digits: one clear message, no traceback
    code, _, err = run(["evaluate", "--checkpoint", str(out / "best.safetensors"), "--dataset", "synthetic"], capsys)
    assert code == 2 and "does not fit" in err and "Traceback" not in err


def test_cifar100_from_the_archive_builds_100_outputs(tmp_path, capsys, colour_model):
    import tarfile

    src = tmp_path / "src"
    make_cifar100(src, n_train=30, n_test=6)
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "cifar-100-binary.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-100-binary", arcname="cifar-100-binary")
    out = tmp_path / "run"
    code, _, err = run(["train", *TINY, "--model", colour_model, "--dataset", "cifar100",
                        "--data-dir", str(data), "--out", str(out)], capsys)
    assert code == 0, err
    meta, state = checkpoint.load_checkpoint(out / "best.safetensors")
    assert meta["model"]["config"]["num_classes"] == 100 and state["model"]["fc.weight"].shape[0] == 100
    assert meta["classes"] == list(CIFAR100.classes)


def test_cifar_with_a_one_channel_model_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    make_cifar10(data)
    for args in (["--data-dir", str(data)], ["--dataset", "cifar10", "--data-dir", str(data)],
                 ["--model", "lenet5-classic", "--dataset", "cifar100"]):
        code, _, err = run(["train", *TINY, *args, "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and "1-channel images" in err and "--model" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_damaged_cifar_files_are_one_clear_error(tmp_path, capsys, colour_model):
    data = tmp_path / "data"
    make_cifar10(data)
    bad = data / "cifar-10-batches-bin" / "data_batch_3.bin"
    bad.write_bytes(bad.read_bytes()[:-10])
    code, _, err = run(["train", *TINY, "--model", colour_model, "--data-dir", str(data),
                        "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and str(bad) in err and "not a whole number" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cifar_transforms_crop_flip_and_normalise_per_channel():
    train_tf, eval_tf = make_transforms([0.5, 0.4, 0.3], [0.2, 0.2, 0.2], True, "cifar10")
    kinds = [type(t) for t in train_tf.transforms]
    assert kinds == [transforms.RandomCrop, transforms.RandomHorizontalFlip, transforms.Normalize]
    assert train_tf.transforms[0].size == (32, 32) and train_tf.transforms[0].padding == (4, 4, 4, 4)
    x = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    expected = (x - np.float32([0.5, 0.4, 0.3]).reshape(3, 1, 1)) / np.float32(0.2)
    np.testing.assert_allclose(eval_tf(x), expected, rtol=1e-6)
    assert train_tf(x, np.random.default_rng(1)).shape == (4, 3, 32, 32)
    assert make_transforms(0.5, 0.2, True, "cifar100")[1](x).shape == x.shape
    # the digits keep their pipeline (pad 28 -> 32)
    assert make_transforms(0.1, 0.3, False, "mnist")[1](np.zeros((1, 1, 28, 28), np.float32)).shape == \
        (1, 1, 32, 32)


# ------------------------------------------------------------------ inferring the dataset
def write_idx_files(folder, n=4, seed=0):
    """MNIST-layout IDX files (gzip), written with struct; returns nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            raw = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
            (folder / f"{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw + array.tobytes(), mtime=0))


def test_infer_cifar_layouts(tmp_path):
    make_cifar10(tmp_path / "a")
    assert infer_dataset(str(tmp_path / "a")) == "cifar10"
    make_cifar10(tmp_path / "b", folder=False)
    assert infer_dataset(str(tmp_path / "b")) == "cifar10"
    make_cifar100(tmp_path / "c")
    assert infer_dataset(str(tmp_path / "c")) == "cifar100"
    (tmp_path / "d" / "cifar10").mkdir(parents=True)
    (tmp_path / "d" / "cifar10" / "cifar-10-binary.tar.gz").write_bytes(b"")  # the download layout
    assert infer_dataset(str(tmp_path / "d")) == "cifar10"


def test_infer_mnist_by_published_checksum_or_folder(tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    write_idx_files(plain)
    sums = {name: hashlib.md5((plain / name).read_bytes()).hexdigest() for name in MNIST.resources}
    with pytest.raises(TrainError, match="pass --dataset mnist or --dataset fashion-mnist"):
        infer_dataset(str(plain))
    monkeypatch.setattr(MNIST, "resources", sums)
    assert infer_dataset(str(plain)) == "mnist"
    monkeypatch.undo()
    monkeypatch.setattr(FashionMNIST, "resources", sums)
    assert infer_dataset(str(plain)) == "fashion-mnist"
    monkeypatch.undo()
    write_idx_files(tmp_path / "x" / "fashion-mnist")  # the download layout: <dir>/<dataset>/
    assert infer_dataset(str(tmp_path / "x")) == "fashion-mnist"
    write_idx_files(tmp_path / "mnist")  # a folder named for the dataset
    assert infer_dataset(str(tmp_path / "mnist")) == "mnist"


def test_infer_the_real_mnist(mnist_dir):
    assert infer_dataset(mnist_dir) == "mnist"


def test_several_or_no_datasets_are_refused(tmp_path):
    make_cifar10(tmp_path / "both")
    make_cifar100(tmp_path / "both")
    with pytest.raises(TrainError, match=r"several datasets \(cifar10, cifar100\).*--dataset"):
        infer_dataset(str(tmp_path / "both"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainError, match="no dataset files recognised.*--dataset"):
        infer_dataset(str(tmp_path / "empty"))


@pytest.mark.parametrize("setup,message", [
    (lambda d: d.mkdir(), "no dataset files recognised"),
    (lambda d: None, "does not exist"),
    (lambda d: write_idx_files(d), "--dataset mnist or --dataset fashion-mnist"),
])
def test_data_dir_without_dataset_never_trains_on_synthetic_digits(tmp_path, capsys, setup, message):
    data = tmp_path / "data"
    setup(data)
    out = tmp_path / "run"
    code, printed, err = run(["train", *TINY, "--data-dir", str(data), "--out", str(out)], capsys)
    assert code == 2 and message in err and "--dataset" in err and "Traceback" not in err
    assert "synthetic" not in printed and not out.exists()


def test_synthetic_with_a_data_dir_is_refused(tmp_path):
    with pytest.raises(TrainError, match="synthetic digits are drawn, not read"):
        TrainConfig(dataset="synthetic", data_dir=str(tmp_path)).resolved()
    assert TrainConfig().resolved().dataset == "synthetic"  # no --data-dir: synthetic as before


def test_mnist_inferred_from_the_files_trains(tmp_path, capsys, monkeypatch):
    data = tmp_path / "mnist"
    write_idx_files(data, n=24)
    out = tmp_path / "run"
    code, printed, err = run(["train", *TINY, "--data-dir", str(data), "--out", str(out)], capsys)
    assert code == 0, err
    assert "lenet5" in printed and "on mnist:" in printed
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "mnist"


@pytest.mark.skipif("tiny-vgg" not in MODELS, reason="tiny-vgg is not registered in minipool.models yet")
def test_tiny_vgg_trains_on_cifar10(tmp_path, capsys):
    data = tmp_path / "data"
    make_cifar10(data, counts=(4, 4, 4, 4, 4), n_test=4)
    code, _, err = run(["train", *TINY, "--model", "tiny-vgg", "--data-dir", str(data),
                        "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err


def test_train_refuses_a_model_that_is_not_a_classifier():
    from minipool.train import TrainConfig, TrainError
    with pytest.raises(TrainError, match="experiment upsampling"):
        TrainConfig(model="tiny-unet").resolved()
