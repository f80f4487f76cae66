"""``python -m minipool experiment``: the grid runner, the three experiments in quick mode,
resuming, --jobs and Dask equal to a serial run, and clear errors for bad arguments."""
import csv
import json
import math
import os

import numpy as np
import pytest

import minipool.nn as nn
from minipool.cli import main
from minipool.experiments import ExperimentError, plan_experiment, run_experiment
from minipool.experiments import shift as shift_mod
from minipool.experiments import training
from minipool.experiments.runner import TIMING_METRICS, RunSpec, run_grid, usable_cores
from minipool.models import MODELS, TinyUNet

# one kernel thread per run: on a shared 2-core CI machine a 2-thread team mostly waits
QUIET = dict(progress="none", log=lambda *a: None, threads=1)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def method_columns(rows):
    """The rows without the timing columns (those measure the machine, not the method)."""
    return [{k: v for k, v in r.items() if k not in TIMING_METRICS} for r in rows]


# ------------------------------------------------------------------ the three experiments, quick
@pytest.fixture(scope="module")
def pooling_quick(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pooling"))
    plan, records = run_experiment("pooling", quick=True, out=out, **QUIET)
    return plan, records, out


def test_pooling_quick_tables(pooling_quick):
    plan, records, out = pooling_quick
    rows = read_csv(os.path.join(out, "results.csv"))
    ran = [v for v in training.POOLINGS if v not in plan.skipped]
    assert len(rows) == 2 * len(ran) == len(plan.specs)          # full and reduced data, one seed
    assert [r["variant"] for r in rows] == ran + ran
    assert [r["tag"] for r in rows] == [""] * len(ran) + ["small"] * len(ran)
    test_size = plan.settings["test_size"]
    for r in rows:
        test, train, gap = float(r["test_error"]), float(r["train_error"]), float(r["gap"])
        assert 0 <= test <= 1 and 0 <= train <= 1
        assert gap == pytest.approx(test - train)
        # an error rate over test_size digits is a whole number of digits
        assert test * test_size == pytest.approx(round(test * test_size), abs=1e-6)
        assert float(r["seconds_per_epoch"]) > 0
        assert int(r["train_images"]) == (plan.settings["train_size"] if r["tag"] == ""
                                          else plan.settings["small_size"])
    # every kind learned something: better than the 90% error of guessing (10 classes)
    assert max(float(r["test_error"]) for r in rows if r["tag"] == "") < 0.9
    md = open(os.path.join(out, "results.md")).read()
    assert "QUICK MODE" in md and "not results" in md
    for v in ran:
        assert f"| {v} | 1 |" in md
    assert "0.47%" in md  # Zeiler & Fergus's stochastic-pooling figure beside the stochastic row
    assert os.path.isfile(os.path.join(out, "pooling_errors.png"))
    assert len(os.listdir(os.path.join(out, "runs"))) == len(plan.specs)


def test_same_seed_same_start_different_kinds_differ(pooling_quick):
    _, records, _ = pooling_quick
    full = {r["spec"]["variant"]: r["metrics"]["test_error"] for r in records if r["spec"]["tag"] == ""}
    assert len(set(full.values())) > 1   # the pooling kind changes the result


def test_shift_quick_tables(tmp_path):
    out = str(tmp_path)
    plan, records = run_experiment("shift", quick=True, out=out, variants="max,avg,blurmax", **QUIET)
    rows = read_csv(os.path.join(out, "results.csv"))
    assert [r["variant"] for r in rows] == ["max", "avg", "blurmax"][:len(rows)]
    for r in rows:
        cons = [float(r[f"consistency_{d}"]) for d in shift_mod.SHIFTS]
        change = [float(r[f"map_change_{d}"]) for d in shift_mod.SHIFTS]
        assert all(0 <= c <= 1 for c in cons) and all(c >= 0 for c in change)
        assert float(r["consistency"]) == pytest.approx(np.mean(cons))
        # a bigger shift moves the pooled maps further (monotone on average over digits)
        assert change == sorted(change)
        # consistency is a fraction of 4 directions x shift_images digits
        n = 4 * plan.settings["shift_images"]
        assert all(c * n == pytest.approx(round(c * n), abs=1e-6) for c in cons)
    assert all(os.path.isfile(os.path.join(out, p)) for p in ("shift_maps.png", "shift_consistency.png"))
    art = records[0]["artifacts"]
    assert np.asarray(art["maps"]).shape == (5, 14, 14)  # shifts 0..4 of one 14x14 pool1 map


def test_shifted_matches_a_loop_reference():
    rng = np.random.default_rng(0)
    images = rng.random((2, 1, 6, 7)).astype(np.float32)
    moves = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
    for d in (1, 2, 3):
        for direction, (dy, dx) in moves.items():
            expected = np.zeros_like(images)
            for i in range(6):
                for j in range(7):
                    si, sj = i - dy * d, j - dx * d
                    if 0 <= si < 6 and 0 <= sj < 7:
                        expected[..., i, j] = images[..., si, sj]
            np.testing.assert_array_equal(shift_mod.shifted(images, d, direction), expected)
    with pytest.raises(ValueError, match="direction"):
        shift_mod.shifted(images, 1, "sideways")


def test_upsampling_quick_tables(tmp_path):
    out = str(tmp_path)
    plan, records = run_experiment("upsampling", quick=True, out=out, **QUIET)
    rows = {r["variant"]: r for r in read_csv(os.path.join(out, "results.csv"))}
    assert list(rows) == ["nearest", "bilinear", "bicubic", "nearest+conv", "bilinear+conv", "transposed",
                          "pixelshuffle", "maxunpool"]
    for name, r in rows.items():
        assert 8 < float(r["psnr"]) < 60
        learned = name not in ("nearest", "bilinear", "bicubic")
        assert (int(r["parameters"]) > 0) == learned
        assert (float(r["train_seconds"]) > 0) == learned
    # the nearest row, recomputed here independently: repeat each averaged pixel 2x2
    _, _, yte, _ = training.load_digits("synthetic", None, 1, plan.settings["test_size"])
    small = yte.reshape(len(yte), 1, 14, 2, 14, 2).mean(axis=(3, 5))
    up = np.repeat(np.repeat(small, 2, axis=2), 2, axis=3)
    mse = ((up - yte) ** 2).reshape(len(yte), -1).mean(axis=1)
    assert float(rows["nearest"]["psnr"]) == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-5)
    # learned decoders beat the pixel repetition they start from
    assert all(float(rows[v]["psnr"]) > float(rows["nearest"]["psnr"])
               for v in ("transposed", "pixelshuffle", "maxunpool"))
    assert os.path.isfile(os.path.join(out, "upsampling_grid.png"))
    md = open(os.path.join(out, "results.md")).read()
    assert "QUICK MODE" in md and "| maxunpool | 1 |" in md


# ------------------------------------------------------------------ TinyUNet
def test_tiny_unet_registered_shapes_and_parameter_counts():
    import minipool as mp

    assert MODELS["tiny-unet"] is TinyUNet
    x = mp.tensor(np.random.default_rng(0).random((2, 1, 14, 14)).astype(np.float32))
    c = 16
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    shared = conv(1, c, 3) + conv(c, 2 * c, 3) + conv(2 * c, 2 * c, 3) + conv(2 * c, c, 3) + conv(c, 1, 3)
    decoder = {"nearest+conv": conv(2 * c, c, 3), "bilinear+conv": conv(2 * c, c, 3),
               "transposed": conv(2 * c, c, 2), "pixelshuffle": conv(2 * c, 4 * c, 3),
               "maxunpool": conv(2 * c, c, 1) + conv(c, c, 3)}
    for name, extra in decoder.items():
        net = TinyUNet(name, channels=c, seed=0)
        assert net(x).shape == (2, 1, 28, 28)
        assert net.trainable_parameter_count() == shared + extra
        again = TinyUNet(name, channels=c, seed=0)
        assert all((a.numpy() == b.numpy()).all() for a, b in zip(net.parameters(), again.parameters()))
    for name in ("nearest", "bilinear", "bicubic"):
        assert TinyUNet(name).trainable_parameter_count() == 0


def test_tiny_unet_fixed_decoders_equal_torch_interpolate():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).random((3, 1, 14, 14)).astype(np.float32)
    import minipool as mp

    for mode in ("nearest", "bilinear", "bicubic"):
        ours = TinyUNet(mode)(mp.tensor(x)).numpy()
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        ref = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=2, mode=mode, **kwargs).numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_tiny_unet_bad_arguments():
    import minipool as mp

    with pytest.raises(ValueError, match="unknown decoder 'linear'.*nearest"):
        TinyUNet("linear")
    with pytest.raises(ValueError, match="channels must be an int >= 1, got 0"):
        TinyUNet("transposed", channels=0)
    net = TinyUNet("transposed", seed=0)
    out = net(mp.zeros(4, 1, 14, 14))
    with pytest.raises(ValueError, match="super-resolution.*experiment upsampling"):
        net.loss(out, mp.tensor(np.zeros(4, np.int64)))


# ------------------------------------------------------------------ resuming
def test_interrupted_grid_resumes_and_skips_finished_runs(tmp_path):
    out = str(tmp_path / "grid")
    plan = plan_experiment("pooling", quick=True, out=out, variants="max,avg")
    calls = []

    def stop_after_two(records):
        calls.append(len(records))
        if len(records) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(plan.specs, out, on_record=stop_after_two, **QUIET)  # noqa
    saved = sorted(os.listdir(os.path.join(out, "runs")))
    assert len(saved) == 2 and len(plan.specs) == 4
    stamps = {p: os.stat(os.path.join(out, "runs", p)).st_mtime_ns for p in saved}
    logs = []
    records = run_grid(plan.specs, out, progress="none", log=logs.append, threads=1)
    assert "2 of 4 runs already finished" in logs[0]
    assert [r["spec"]["variant"] for r in records] == ["max", "avg", "max", "avg"]
    # the finished runs were not run again
    assert all(os.stat(os.path.join(out, "runs", p)).st_mtime_ns == t for p, t in stamps.items())
    # a run cut short mid-write (a broken record) is run again; the others are not
    broken = os.path.join(out, "runs", saved[0])
    with open(broken, "w") as f:
        f.write('{"spec": ')
    logs.clear()
    again = run_grid(plan.specs, out, progress="none", log=logs.append, threads=1)
    assert "3 of 4 runs already finished" in logs[0]
    assert [r["metrics"]["test_error"] for r in again] == [r["metrics"]["test_error"] for r in records]
    json.load(open(broken))  # rewritten whole


def test_changed_settings_are_new_runs(tmp_path):
    a = plan_experiment("pooling", quick=True, variants="max")
    b = plan_experiment("pooling", quick=True, variants="max", epochs=3)
    assert a.specs[0].key != b.specs[0].key
    assert a.specs[0].key == plan_experiment("pooling", quick=True, variants="max").specs[0].key


# ------------------------------------------------------------------ parallel paths equal serial
@pytest.fixture(scope="module")
def serial_reference(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("serial"))
    run_experiment("pooling", quick=True, out=out, variants="max,stochastic,fractional", **QUIET)
    return method_columns(read_csv(os.path.join(out, "results.csv")))


@pytest.mark.skipif(usable_cores() < 2, reason="--jobs 2 needs 2 usable cores")
def test_jobs_2_equals_serial(tmp_path, serial_reference):
    out = str(tmp_path)
    run_experiment("pooling", quick=True, out=out, variants="max,stochastic,fractional", jobs=2,
                   **dict(QUIET, threads=None))
    rows = read_csv(os.path.join(out, "results.csv"))
    assert method_columns(rows) == serial_reference
    # each worker ran with cores // jobs kernel threads
    threads = {json.load(open(os.path.join(out, "runs", p)))["threads"] for p in os.listdir(os.path.join(out, "runs"))}
    assert threads == {usable_cores() // 2}


@pytest.mark.skipif(usable_cores() < 2, reason="needs 2 usable cores")
def test_thread_count_does_not_change_the_numbers():
    from minipool.experiments.runner import execute

    spec = plan_experiment("pooling", quick=True, variants="stochastic").specs[0]
    one, two = execute(spec, 1), execute(spec, 2)
    assert (one["threads"], two["threads"]) == (1, 2)
    assert {k: v for k, v in one["metrics"].items() if k not in TIMING_METRICS} == \
        {k: v for k, v in two["metrics"].items() if k not in TIMING_METRICS}


def test_dask_local_cluster_equals_serial(tmp_path, serial_reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=50) as cluster:
        out = str(tmp_path)
        run_experiment("pooling", quick=True, out=out, variants="max,stochastic,fractional",
                       scheduler=cluster.scheduler_address, **QUIET)
    assert method_columns(read_csv(os.path.join(out, "results.csv"))) == serial_reference


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    pytest.importorskip("distributed")
    with pytest.raises(ExperimentError, match="cannot reach the Dask scheduler"):
        run_grid([RunSpec("pooling", "max", 0, {})], str(tmp_path), scheduler="tcp://127.0.0.1:1",
                 progress="none", log=lambda *a: None, dask_timeout=1)


# ------------------------------------------------------------------ variants minipool lacks
def test_missing_pooling_layer_is_skipped_with_a_note(monkeypatch, tmp_path):
    monkeypatch.delattr(nn, "MaxBlurPool2d", raising=False)
    plan = plan_experiment("pooling", quick=True, variants="max,blurmax")
    assert [s.variant for s in plan.specs] == ["max", "max"]
    assert "MaxBlurPool2d" in plan.skipped["blurmax"]
    with pytest.raises(ValueError, match="not available"):
        training.PooledLeNet("blurmax")


# ------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("kwargs, message", [
    (dict(name="pool"), "unknown experiment 'pool'; choose one of: pooling, shift, upsampling"),
    (dict(name="pooling", variants="max,median"), "unknown variant 'median' for experiment pooling"),
    (dict(name="upsampling", variants="max"), "unknown variant 'max' for experiment upsampling"),
    (dict(name="pooling", seeds=0), "seeds must be an integer >= 1, got 0"),
    (dict(name="pooling", seeds=-2), "seeds must be an integer >= 1, got -2"),
    (dict(name="pooling", epochs=0), "epochs must be an integer >= 1, got 0"),
    (dict(name="pooling", dataset="cifar10"), "dataset must be 'mnist' or 'synthetic'"),
    (dict(name="pooling", jobs=0), "jobs must be an integer >= 1, got 0"),
    (dict(name="pooling", jobs=10 ** 6), "exceeds the .* usable cores"),
    (dict(name="pooling", jobs=2, scheduler="tcp://x:1", threads=None), "not both"),
    (dict(name="pooling", jobs=2, threads=2), "jobs 2 x threads 2 exceeds the"),
    (dict(name="pooling", threads=0), "threads must be an integer >= 1, got 0"),
])
def test_bad_arguments_are_clear_errors(kwargs, message, tmp_path):
    if kwargs.get("jobs") == 2 and usable_cores() != 2:
        pytest.skip("needs 2 cores")
    with pytest.raises(ExperimentError, match=message):
        run_experiment(out=str(tmp_path), **dict(QUIET, **kwargs))
    assert not os.listdir(tmp_path)  # nothing written


def test_mnist_without_files_is_a_clear_error(tmp_path):
    with pytest.raises(ExperimentError, match="MNIST not readable from --data-dir"):
        plan_experiment("pooling", dataset="mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize("argv, message", [
    (["experiment", "nope"], "unknown experiment 'nope'"),
    (["experiment", "pooling", "--seeds", "0"], "seeds must be an integer >= 1, got 0"),
    (["experiment", "shift", "--variants", "max,foo"], "unknown variant 'foo'"),
])
def test_cli_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m minipool experiment: error:") and message in err


def test_cli_quick_run(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert main(["experiment", "upsampling", "--quick", "--variants", "nearest,bicubic", "--out", out,
                 "--progress", "lines"]) == 0
    text = capsys.readouterr().out
    assert "[2/2] upsampling bicubic seed 0: PSNR" in text
    rows = read_csv(os.path.join(out, "results.csv"))
    assert [r["variant"] for r in rows] == ["nearest", "bicubic"]
    # bicubic beats pixel repetition on smooth strokes
    assert float(rows[1]["psnr"]) > float(rows[0]["psnr"])
    # a second call finds both runs finished and runs nothing
    assert main(["experiment", "upsampling", "--quick", "--variants", "nearest,bicubic", "--out", out,
                 "--progress", "lines"]) == 0
    assert "2 of 2 runs already finished" in capsys.readouterr().out


def test_two_seeds_give_mean_and_std(tmp_path):
    out = str(tmp_path)
    _, records = run_experiment("upsampling", quick=True, seeds=2, out=out, variants="transposed", **QUIET)
    values = [r["metrics"]["psnr"] for r in records]
    assert len(values) == 2 and values[0] != values[1]
    md = open(os.path.join(out, "results.md")).read()
    assert f"| transposed | 2 | {np.mean(values):.2f} ± {np.std(values, ddof=1):.2f} |" in md


# ------------------------------------------------------------------ real MNIST
def test_pooling_on_real_mnist(mnist_dir, tmp_path):
    plan, records = run_experiment("pooling", data_dir=mnist_dir, variants="max", seeds=1, epochs=3,
                                   train_size=1000, test_size=300, out=str(tmp_path), **QUIET)
    assert plan.settings["dataset"] == "mnist"
    assert [r["metrics"]["train_images"] for r in records] == [1000, 1000]
    assert [r["metrics"]["epochs"] for r in records] == [3, 18]  # the reduced-data run keeps its 6x
    full, small = (r["metrics"] for r in records)
    assert full["test_error"] < 0.5 and small["test_error"] < 0.2
    assert small["train_error"] <= small["test_error"]
