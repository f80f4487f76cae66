"""The trainer: checkpoints, reports, reproducibility, resume, divergence; accuracy targets (slow)."""
import json
import os
import signal

import numpy as np
import pytest

import minipool as mp
from minipool import checkpoint, train
from minipool.report import confusion_matrix, format_confusion_matrix



def tiny_config(out, **overrides):
    values = dict(dataset="synthetic", epochs=2, batch_size=32, train_size=256, val_size=64,
                  test_size=100, out=str(out), progress="none", seed=3, plots=False)
    values.update(overrides)
    return train.TrainConfig(**values)


def quiet(*args, **kwargs):
    pass


def model_state(path):
    return checkpoint.load_checkpoint(path)[1]["model"]


def without_timing(history):
    return [{k: v for k, v in h.items() if k not in ("seconds", "images_per_second")} for h in history]


# ------------------------------------------------------------------ checkpoint files
def test_checkpoint_round_trip_keeps_structure_and_dtypes(tmp_path):
    state = {"model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, np.float64)},
             "optimizer": {"state": {0: {"momentum_buffer": np.ones(3, np.float32)}, 1: {}},
                           "param_groups": [{"lr": 0.1, "params": [0, 1], "betas": (0.9, 0.999)}]},
             "scheduler": None, "step": np.int64(7), "flag": True, "name": "x"}
    path = tmp_path / "c.safetensors"
    checkpoint.save_checkpoint(path, {"epoch": 2, "big": 2 ** 70, "nan": float("nan")}, state)
    meta, loaded = checkpoint.load_checkpoint(path)
    assert meta["epoch"] == 2 and meta["big"] == 2 ** 70 and np.isnan(meta["nan"])
    assert loaded["model"]["w"].dtype == np.float32 and loaded["model"]["b"].dtype == np.float64
    np.testing.assert_array_equal(loaded["model"]["w"], state["model"]["w"])
    assert list(loaded["optimizer"]["state"]) == [0, 1]  # integer keys survive
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert loaded["scheduler"] is None and loaded["step"] == 7 and loaded["flag"] is True
    assert sorted(loaded) == sorted(state)
    assert os.listdir(tmp_path) == ["c.safetensors"]  # no temporary file left behind


def test_checkpoint_opens_with_mp_load_as_a_torch_checkpoint_would(tmp_path):
    """ckpt = mp.load(path); model.load_state_dict(ckpt["model"]): the torch.load habit."""
    model = mp.nn.Sequential(mp.nn.Conv2d(1, 2, 3), mp.nn.Flatten(), mp.nn.Linear(8, 3))
    path = tmp_path / "best.safetensors"
    checkpoint.save_checkpoint(path, {"epoch": 1}, {"model": model.state_dict()})
    ckpt = mp.load(path)
    assert ckpt["meta"] == {"epoch": 1}
    other = mp.nn.Sequential(mp.nn.Conv2d(1, 2, 3), mp.nn.Flatten(), mp.nn.Linear(8, 3))
    other.load_state_dict(ckpt["model"])
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def _legacy_npz(path, meta, state_node, **arrays):
    """A checkpoint as minipool <= 0.1 wrote it: arrays plus a JSON __meta__ entry."""
    np.savez(path, __meta__=np.array(json.dumps({"format": checkpoint.FORMAT_NAME, "version": 1,
                                                 "meta": meta, "state": state_node})), **arrays)


def test_legacy_npz_checkpoint_still_loads(tmp_path):
    path = tmp_path / "old.npz"
    w = np.arange(4, dtype=np.float32)
    _legacy_npz(path, {"epoch": 3}, {"__dict__": [["model", {"__dict__": [["w", {"__array__": "a0"}]]}],
                                                  ["betas", {"__list__": [0.9, 0.99], "tuple": True}]]},
                a0=w)
    meta, state = checkpoint.load_checkpoint(path)
    assert meta == {"epoch": 3} and state["betas"] == (0.9, 0.99)
    np.testing.assert_array_equal(state["model"]["w"], w)


def test_checkpoint_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    _legacy_npz(path, {}, {"__array__": "a0"}, a0=np.array([{"payload": 1}], dtype=object))
    with pytest.raises(checkpoint.CheckpointError, match="evil.npz"):
        checkpoint.load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "npz", "safetensors"])
def test_bad_checkpoint_files_name_the_file(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    if content == "npz":  # a valid npz that is not ours
        with open(path, "wb") as f:
            np.savez(f, x=np.ones(2))
    elif content == "safetensors":  # a valid safetensors file that is not a checkpoint
        mp.save({"weight": mp.ones(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError, match="bad.ckpt"):
        checkpoint.load_checkpoint(path)


def test_truncated_checkpoint_is_reported(tmp_path):
    path = tmp_path / "cut.safetensors"
    checkpoint.save_checkpoint(path, {}, {"w": np.ones(1000)})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="cut.safetensors"):
        checkpoint.load_checkpoint(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "keep.safetensors"
    checkpoint.save_checkpoint(path, {"v": 1}, {"w": np.ones(3)})

    def failing(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        checkpoint.atomic_write_bytes(path, failing)
    assert checkpoint.load_checkpoint(path)[0] == {"v": 1}
    assert os.listdir(tmp_path) == ["keep.safetensors"]


def test_checkpoint_refuses_objects_and_reserved_keys(tmp_path):
    with pytest.raises(TypeError, match="cannot store"):
        checkpoint.save_checkpoint(tmp_path / "never.safetensors", {}, {"f": object()})
    with pytest.raises(TypeError, match="meta"):
        checkpoint.save_checkpoint(tmp_path / "never.safetensors", {}, {"meta": 1})
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ reports
def test_confusion_matrix_matches_a_loop():
    rng = np.random.default_rng(0)
    true, pred = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    expected = np.zeros((4, 4), int)
    for t, p in zip(true, pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(true, pred, 4), expected)
    text = format_confusion_matrix(expected, ["a", "b", "c", "d"])
    lines = text.splitlines()
    assert len(lines) == 5 and "recall" in lines[0]
    assert lines[1].split()[1:5] == [str(v) for v in expected[0]]


# ------------------------------------------------------------------ training runs
def test_config_validation_messages():
    bad = [dict(batch_size=0, match="batch-size"), dict(lr=0.0, match="learning rate"),
           dict(lr=-1.0, match="learning rate"), dict(lr=float("nan"), match="learning rate"),
           dict(epochs=0, match="epochs"), dict(model="vgg", match="unknown model"),
           dict(dataset="cifar", match="unknown dataset"), dict(optimizer="rmsprop", match="unknown optimizer"),
           dict(schedule="linear", match="unknown schedule"), dict(threads=0, match="threads"),
           dict(dataset="mnist", data_dir="/no/such/dir", match="does not exist")]
    for case in bad:
        match = case.pop("match")
        with pytest.raises(train.TrainError, match=match):
            train.TrainConfig(**case).resolved()


def test_defaults_depend_on_the_dataset():
    syn = train.TrainConfig().resolved()
    assert (syn.model, syn.dataset, syn.optimizer, syn.schedule) == ("lenet5", "synthetic", "sgd", "onecycle")
    assert syn.out == os.path.join("runs", "lenet5-synthetic")
    mn = train.TrainConfig(dataset="mnist").resolved()
    assert mn.epochs == 10 and mn.augment is True
    classic = train.TrainConfig(model="lenet5-classic", dataset="mnist").resolved()
    assert classic.lr < mn.lr and classic.epochs == 10
    assert train.TrainConfig(model="lenet5-classic", lr=0.5).resolved().lr == 0.5  # explicit wins


def test_a_small_run_writes_everything_and_learns(tmp_path):
    metrics = train.run_training(tiny_config(tmp_path, train_size=600, epochs=3, batch_size=32, plots=True),
                                 log=quiet)
    files = set(os.listdir(tmp_path))
    assert {"best.safetensors", "last.safetensors", "metrics.json"} <= files
    assert {"curves.png", "confusion_matrix.png", "filters.png", "feature_maps.png"} <= files
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"] and len(saved["history"]) == 3
    assert saved["images_per_second"] > 0 and saved["wall_time_seconds"] > 0
    assert np.array(saved["confusion_matrix"]).sum() == 100
    assert metrics["test_accuracy"] > 0.5  # far above chance (0.1) after 3 short epochs
    # the best checkpoint reproduces the reported test accuracy
    result = train.evaluate_checkpoint(tmp_path / "best.safetensors", test_size=100, log=quiet)
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_same_seed_same_history_whatever_the_thread_count(tmp_path):
    import minipool

    before = minipool.get_num_threads()
    try:
        a = train.run_training(tiny_config(tmp_path / "a", threads=1), log=quiet)
        b = train.run_training(tiny_config(tmp_path / "b", threads=2), log=quiet)
    finally:
        minipool.set_num_threads(before)
    assert without_timing(a["history"]) == without_timing(b["history"])
    for k, v in model_state(tmp_path / "a" / "last.safetensors").items():
        np.testing.assert_array_equal(v, model_state(tmp_path / "b" / "last.safetensors")[k])
    c = train.run_training(tiny_config(tmp_path / "c", seed=4), log=quiet)
    assert without_timing(c["history"]) != without_timing(a["history"])


@pytest.mark.parametrize("optimizer,schedule,model", [("sgd", "onecycle", "lenet5"),
                                                      ("adam", "cosine", "lenet5"),
                                                      ("sgd", "step", "lenet5-classic")])
def test_interrupt_and_resume_gives_the_same_weights(tmp_path, monkeypatch, optimizer, schedule, model):
    cfg = dict(optimizer=optimizer, schedule=schedule, model=model, augment=True, epochs=2)
    full = train.run_training(tiny_config(tmp_path / "full", **cfg), log=quiet)

    calls = {"n": 0}
    real_update = train._Progress.update

    def update_then_interrupt(self, *args):
        real_update(self, *args)
        calls["n"] += 1
        if calls["n"] == 11:  # in the middle of the second epoch (8 batches per epoch)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(train._Progress, "update", update_then_interrupt)
    with pytest.raises(train.TrainingInterrupted) as info:
        train.run_training(tiny_config(tmp_path / "cut", **cfg), log=quiet)
    monkeypatch.setattr(train._Progress, "update", real_update)
    meta, _ = checkpoint.load_checkpoint(info.value.path)
    assert meta["position"] == {"epoch": 1, "batch": 3}
    resumed = train.run_training(train.TrainConfig(progress="none"), resume=info.value.path,
                                 explicit={"progress"}, log=quiet)
    assert without_timing(resumed["history"]) == without_timing(full["history"])
    final_full, final_resumed = model_state(tmp_path / "full" / "last.safetensors"), model_state(tmp_path / "cut" / "last.safetensors")
    for k, v in final_full.items():
        np.testing.assert_array_equal(v, final_resumed[k], err_msg=k)
    assert resumed["test_accuracy"] == full["test_accuracy"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = train._loss_fn

    def poisoned(model):
        fn, calls = real(model), {"n": 0}

        def loss(out, y):
            calls["n"] += 1
            value = fn(out, y)
            return value * float("nan") if calls["n"] == 12 else value
        return loss

    monkeypatch.setattr(train, "_loss_fn", poisoned)
    with pytest.raises(train.TrainingDiverged, match="nan.*--lr"):
        train.run_training(tiny_config(tmp_path), log=quiet)
    meta, state = checkpoint.load_checkpoint(tmp_path / "best.safetensors")
    assert meta["position"]["epoch"] == 1
    assert all(np.isfinite(v).all() for v in state["model"].values())
    assert checkpoint.load_checkpoint(tmp_path / "last.safetensors")[0]["position"] == {"epoch": 1, "batch": 0}


def test_weights_broken_by_the_last_step_are_not_checkpointed(tmp_path, monkeypatch):
    """A finite loss whose step leaves NaN weights: caught before last.safetensors is overwritten."""
    real_step = train.build_optimizer

    def poisoning_optimizer(cfg, params):
        opt, calls = real_step(cfg, params), {"n": 0}
        step = opt.step

        def poisoned_step():
            step()
            calls["n"] += 1
            if calls["n"] == 16:  # the last step of the second epoch (8 batches per epoch)
                params[0].numpy()[...] = np.nan
        opt.step = poisoned_step
        return opt

    monkeypatch.setattr(train, "build_optimizer", poisoning_optimizer)
    with pytest.raises(train.TrainingDiverged, match="non-finite"):
        train.run_training(tiny_config(tmp_path, epochs=3), log=quiet)
    meta, state = checkpoint.load_checkpoint(tmp_path / "last.safetensors")
    assert meta["position"] == {"epoch": 1, "batch": 0}
    assert all(np.isfinite(v).all() for v in state["model"].values())


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    train.run_training(tiny_config(tmp_path, epochs=1), log=quiet)
    with pytest.raises(train.TrainError, match="lenet5"):
        train.run_training(train.TrainConfig(model="lenet5-classic"), resume=tmp_path / "last.safetensors",
                           explicit={"model"}, log=quiet)
    with pytest.raises(train.TrainError, match="batch-size"):
        train.run_training(train.TrainConfig(batch_size=8), resume=tmp_path / "last.safetensors",
                           explicit={"batch_size"}, log=quiet)
    with pytest.raises(train.TrainError, match="schedule"):
        train.run_training(train.TrainConfig(epochs=5), resume=tmp_path / "last.safetensors",
                           explicit={"epochs"}, log=quiet)


# ------------------------------------------------------------------ accuracy targets (slow)
@pytest.mark.slow
@pytest.mark.parametrize("model,target", [("lenet5", 0.988), ("lenet5-classic", 0.980)])
def test_mnist_accuracy_target(tmp_path, model, target, mnist_dir):
    metrics = train.run_training(train.TrainConfig(model=model, dataset="mnist", data_dir=mnist_dir,
                                                   out=str(tmp_path), progress="lines"), log=print)
    assert metrics["test_images"] == 10000
    assert metrics["test_accuracy"] >= target


@pytest.mark.slow
def test_default_synthetic_run_reaches_high_accuracy(tmp_path):
    metrics = train.run_training(train.TrainConfig(out=str(tmp_path), progress="lines"), log=print)
    assert metrics["test_accuracy"] >= 0.97


def test_progress_lines_and_silence():
    lines = []
    progress = train._Progress("lines", 8, "epoch 1/1", lines.append)
    for done in range(1, 9):
        progress.update(done, 0.5, 0.25, 1000.0)
    progress.close()
    assert [line.split("]")[0].strip() for line in lines] == ["epoch 1/1 [2/8", "epoch 1/1 [4/8", "epoch 1/1 [6/8"]
    assert "loss 0.5000 acc 25.00% 1,000 img/s" in lines[0]
    quiet_lines = []
    silent = train._Progress("none", 8, "e", quiet_lines.append)
    for done in range(1, 9):
        silent.update(done, 0.5, 0.25, 1000.0)
    assert quiet_lines == []
