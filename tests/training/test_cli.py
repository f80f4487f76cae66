"""``python -m minipool train`` / ``evaluate``: tiny runs, bad input, Ctrl-C and --resume."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from minipool import checkpoint
from minipool.cli import main

TINY = ["--train-size", "256", "--val-size", "64", "--test-size", "100", "--batch-size", "32",
        "--epochs", "1", "--progress", "lines", "--no-plots"]


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "confusion matrix" in printed and "recall" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and len(metrics["history"]) == 1
    assert main(["evaluate", "--checkpoint", str(out / "best.safetensors"), "--test-size", "100"]) == 0
    printed = capsys.readouterr().out
    assert f"accuracy {100 * metrics['test_accuracy']:.2f}%" in printed


def test_evaluate_on_real_mnist_when_present(tmp_path, capsys, mnist_dir):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--dataset", "mnist", "--data-dir", mnist_dir, "--out", str(out)]) == 0
    assert main(["evaluate", "--checkpoint", str(out / "best.safetensors"), "--dataset", "mnist",
                 "--data-dir", mnist_dir, "--test-size", "100"]) == 0
    assert "on mnist test (100 images)" in capsys.readouterr().out


BAD_INPUT = [
    (["--model", "resnet"], "unknown model"),
    (["--dataset", "imagenet"], "unknown dataset"),
    (["--optimizer", "lbfgs"], "unknown optimizer"),
    (["--schedule", "warmup"], "unknown schedule"),
    (["--batch-size", "0"], "batch-size"),
    (["--lr", "0"], "learning rate"),
    (["--lr", "-0.1"], "learning rate"),
    (["--epochs", "two"], "invalid int"),
    (["--dataset", "mnist", "--data-dir", "/no/such/folder"], "does not exist"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT)
def test_bad_input_gives_one_clear_message_and_keeps_out(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("precious")
    try:
        code = main(["train", *TINY, "--out", str(out), *args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2
    assert os.listdir(out) == ["metrics.json"] and (out / "metrics.json").read_text() == "precious"


def test_missing_mnist_files_say_where_to_put_them(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", *TINY, "--dataset", "mnist", "--data-dir", str(empty),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "--download" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_resume_with_a_checkpoint_of_another_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(out / "last.safetensors"), "--model", "lenet5-classic"]) == 2
    err = capsys.readouterr().err
    assert "lenet5" in err and "Traceback" not in err
    assert (out / "metrics.json").read_bytes() == before
    assert main(["evaluate", "--checkpoint", str(out / "metrics.json")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def run_cli(args, cwd, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "minipool", "train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_ctrl_c_writes_a_checkpoint_and_resume_finishes_identically(tmp_path):
    """A real SIGINT to a real process; the resumed run must end with the uninterrupted
    run's exact weights."""
    args = ["--train-size", "640", "--val-size", "64", "--test-size", "50", "--batch-size", "32",
            "--epochs", "3", "--progress", "lines", "--seed", "5", "--threads", "1", "--no-plots"]
    full = run_cli([*args, "--out", str(tmp_path / "full")], tmp_path)
    cut = run_cli([*args, "--out", str(tmp_path / "cut")], tmp_path)
    # interrupt as soon as the first progress line of epoch 1 appears
    for line in cut.stdout:
        if line.strip().startswith("epoch 1/3 ["):
            cut.send_signal(signal.SIGINT)
            break
    _, err = cut.communicate(timeout=300)
    full.communicate(timeout=300)
    assert full.returncode == 0
    assert cut.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    meta, _ = checkpoint.load_checkpoint(tmp_path / "cut" / "last.safetensors")
    assert meta["position"]["epoch"] < 3
    resumed = run_cli(["--resume", str(tmp_path / "cut" / "last.safetensors"), "--progress", "none"], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming from" in out
    a = checkpoint.load_checkpoint(tmp_path / "full" / "last.safetensors")[1]["model"]
    b = checkpoint.load_checkpoint(tmp_path / "cut" / "last.safetensors")[1]["model"]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ma = json.loads((tmp_path / "full" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert ma["test_accuracy"] == mb["test_accuracy"]
    assert [h["train_loss"] for h in ma["history"]] == [h["train_loss"] for h in mb["history"]]


def test_fashion_mnist_from_idx_files(tmp_path, capsys):
    from minipool.data import write_idx

    root = tmp_path / "fashion"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("t10k", 40)):
        write_idx(root / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(root / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(root), "--val-size", "20",
                 "--epochs", "1", "--batch-size", "50", "--progress", "none", "--no-plots",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "100 train / 20 validation / 40 test images" in printed and "Ankle " in printed
    assert json.loads((out / "metrics.json").read_text())["test_images"] == 40
