"""Train and evaluate LeNet-5 on minipool's own autograd and kernels.

``python -m minipool train`` calls :func:`run_training`; everything a run does
is decided by a :class:`TrainConfig`.  A run is reproducible: the weights come
from ``seed``, and the order and augmentation of every batch from ``(seed,
epoch, batch)``, so the same seed gives the same history whatever the thread
count, and a run resumed from a checkpoint ends with exactly the weights of an
uninterrupted one.

Files written to ``out``: ``best.safetensors`` (the weights with the best validation
accuracy, written atomically), ``last.safetensors`` (a resumable checkpoint written
after every epoch and on Ctrl-C), ``metrics.json``, and PNG plots when
matplotlib is installed.

How to read it: :func:`run_training` is the whole run in a dozen lines; each
step is a method of :class:`_TrainingRun` (data, model and optimiser, resume,
one epoch, validation and checkpoints, the final report).  The config, the
datasets, the machine settings, the optimiser, evaluation and the progress
display live in :mod:`minipool.train_setup` and are re-exported here.
"""
import contextlib
import json
import math
import os
import signal
import time

import numpy as np

from minipool import checkpoint
from minipool.report import confusion_matrix, format_confusion_matrix, save_plots
from minipool.tensor import Tensor, no_grad
from minipool.train_setup import (  # noqa: F401 (re-exported: minipool.train is the public home)
    DATASET_DEFAULTS, DATASET_INPUTS, DATASETS, EVAL_BATCH, MODEL_DEFAULTS, OPTIMIZERS, SCHEDULES,
    SYNTHETIC_TEST_SEED, TrainConfig, TrainError, TrainingDiverged, TrainingInterrupted,
    _Progress, _current_lr, _loss_fn, _prepared, _resume_config, _threads_now,
    build_optimizer, build_scheduler, evaluate_arrays, infer_dataset,
    load_datasets, make_transforms, open_split, set_threads, use_training_machine_settings)

__all__ = ["TrainConfig", "TrainError", "TrainingDiverged", "TrainingInterrupted", "run_training",
           "evaluate_checkpoint", "DATASETS", "OPTIMIZERS", "SCHEDULES", "DATASET_DEFAULTS",
           "MODEL_DEFAULTS"]


# --------------------------------------------------------------------------- checkpoints
def _training_state(model, optimizer, scheduler):
    from minipool import _random

    # The loader needs no saved RNG (its draws depend on seed/epoch/batch only); the shared
    # generator is saved for layers that draw from it during training (dropout).
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": _random.default_generator().bit_generator.state}


def _checkpoint_meta(cfg, model, kind, position, summary):
    """Everything but the arrays.  ``position`` = {"epoch": e, "batch": b}: the next step to
    run is batch b (0-based) of epoch e (0-based); {"epoch": epochs, "batch": 0} is a finished run.
    ``summary`` is the run's history, best epoch, classes and normalisation (see _TrainingRun)."""
    import minipool

    return {"kind": kind, "minipool_version": minipool.__version__,
            "model": {"name": model.name, "config": cfg.model_config(cfg.seed)},
            "train_config": cfg.as_dict(), "normalization": summary["normalization"],
            "position": position, "history": summary["history"], "best": summary["best"],
            "partial_epoch": summary.get("partial_epoch"), "classes": summary["classes"]}


def load_model_from_checkpoint(path):
    """(model, meta, state) from a checkpoint written by a training run."""
    from minipool.models import MODELS, build_model

    try:
        meta, state = checkpoint.load_checkpoint(path)
    except checkpoint.CheckpointError as e:
        raise TrainError(str(e)) from None
    info = meta.get("model", {})
    if info.get("name") not in MODELS:
        raise TrainError(f"{path}: checkpoint names an unknown model {info.get('name')!r}")
    model = build_model(info["name"], **info.get("config", {}))
    try:
        model.load_state_dict(state["model"])
    except (ValueError, KeyError) as e:
        raise TrainError(f"{path}: the weights do not fit {info['name']}: {e}") from None
    return model, meta, state


# --------------------------------------------------------------------------- the run
def run_training(config, resume=None, explicit=(), log=print):
    """Train per ``config`` (a TrainConfig), optionally resuming from the checkpoint ``resume``.

    ``explicit`` names the options the user set (they must agree with a
    resumed checkpoint).  Returns the metrics dict also written to
    ``metrics.json``.  Raises TrainError for bad input, TrainingDiverged on a
    non-finite loss, TrainingInterrupted after Ctrl-C (checkpoint saved).
    """
    wall_start = time.perf_counter()
    resumed = None
    if resume is not None:
        config, resumed = _open_resumable_checkpoint(config, resume, explicit)
    cfg = config.resolved()
    use_training_machine_settings(cfg)

    run = _TrainingRun(cfg, log)
    run.load_data()
    run.build_model_and_optimizer(resumed[0] if resumed else None)
    if resumed is not None:
        run.restore(resumed, resume)
    # --out is created only now: bad input above leaves whatever it holds untouched
    run.open_output_folder(resuming=resumed is not None)
    run.log_overview()
    with _ctrl_c_requests_a_checkpoint(log) as interrupt:
        run.train_remaining_epochs(interrupt)
    return run.final_report(wall_start)


def _open_resumable_checkpoint(config, path, explicit):
    """(the config to run, (model, meta, state)) from the checkpoint ``path``; the options
    named in ``explicit`` must agree with the ones it was trained with."""
    model, meta, state = load_model_from_checkpoint(path)
    if "position" not in meta or "train_config" not in meta:
        raise TrainError(f"{path} is not a resumable training checkpoint")
    if "model" in explicit and config.model != meta["model"]["name"]:
        raise TrainError(f"--resume {path}: the checkpoint holds a {meta['model']['name']} model, "
                         f"not {config.model}")
    return _resume_config(config, explicit, meta, path), (model, meta, state)


@contextlib.contextmanager
def _ctrl_c_requests_a_checkpoint(log):
    """While training, the first Ctrl-C only sets ``interrupt["requested"]`` (the run then
    saves a resumable checkpoint after the current step); a second one stops at once."""
    interrupt = {"requested": False}

    def on_sigint(signum, frame):
        if interrupt["requested"]:
            raise KeyboardInterrupt
        interrupt["requested"] = True
        log("\ninterrupt: finishing this step, then saving a resumable checkpoint "
            "(press Ctrl-C again to stop at once)")

    previous_handler = None
    try:
        previous_handler = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: no Ctrl-C handling
        pass
    try:
        yield interrupt
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)


class _TrainingRun:
    """One run's state, handed from step to step.

    ``summary`` is what every checkpoint's metadata carries besides the
    config: the per-epoch ``history``, the ``best`` epoch so far, the
    ``classes``, the input ``normalization`` and, after Ctrl-C in the middle of
    an epoch, the ``partial_epoch`` totals.
    """

    def __init__(self, cfg, log):
        self.cfg, self.log = cfg, log

    # ----------------------------------------------------------------- setting up
    def load_data(self):
        """The three splits, the transforms, the prepared validation set and the loader."""
        cfg = self.cfg
        self.train_set, self.val_set, self.test_set, self.classes = load_datasets(cfg)
        self.mean, self.std = self.train_set.mean_std()
        train_tf, self.eval_tf = make_transforms(self.mean, self.std, cfg.augment, cfg.dataset)
        self.val_x, self.val_y = _prepared(self.val_set, self.eval_tf)

        from minipool.data import DataLoader

        self.loader = DataLoader(self.train_set, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                                 drop_last=False, transform=train_tf)
        self.steps_per_epoch = len(self.loader)

    def build_model_and_optimizer(self, resumed_model=None):
        """A fresh seeded model (or the resumed one), its optimiser and schedule; training
        starts at epoch 0, batch 0 with an empty history."""
        cfg = self.cfg
        if resumed_model is None:
            from minipool import _random
            from minipool.models import build_model

            _random.manual_seed([cfg.seed, 0xD209])  # for layers that draw while training (dropout)
            self.model = build_model(cfg.model, **cfg.model_config(cfg.seed))
        else:
            self.model = resumed_model
        self.optimizer = build_optimizer(cfg, list(self.model.parameters()))
        self.scheduler, self.schedule_per_step = build_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        self.summary = {"history": [], "best": {"val_accuracy": -1.0, "epoch": 0}, "classes": self.classes,
                        "normalization": [self.mean, self.std], "partial_epoch": None}
        self.start_epoch, self.start_batch = 0, 0

    def restore(self, resumed, path):
        """Continue where the checkpoint ``path`` stopped: optimiser, schedule, random
        generator, history and position."""
        _, meta, state = resumed
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("rng") is not None:
            from minipool import _random
            _random.default_generator().bit_generator.state = state["rng"]
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.summary["history"] = list(meta["history"])
        self.summary["best"] = dict(meta["best"])
        self.start_epoch, self.start_batch = meta["position"]["epoch"], meta["position"]["batch"]
        if self.start_batch:
            self.summary["partial_epoch"] = meta.get("partial_epoch")
        if self.start_epoch >= self.cfg.epochs:
            self.log(f"{path} already finished its {self.cfg.epochs} epochs: writing the final report only")
        else:
            self.log(f"resuming from {path}: epoch {self.start_epoch + 1}, batch {self.start_batch}")

    def open_output_folder(self, resuming):
        """Create ``out``; when resuming, keep the best weights saved so far for the report."""
        os.makedirs(self.cfg.out, exist_ok=True)
        self.best_path = os.path.join(self.cfg.out, "best" + checkpoint.EXTENSION)
        self.last_path = os.path.join(self.cfg.out, "last" + checkpoint.EXTENSION)
        self.best_state = None
        if resuming:
            # a run begun by minipool <= 0.1 kept its best weights in best.npz
            for best in (self.best_path, os.path.join(self.cfg.out, "best.npz")):
                try:
                    self.best_state = checkpoint.load_checkpoint(best)[1]["model"]
                    break
                except checkpoint.CheckpointError:
                    continue

    def log_overview(self):
        """One line: the model, the data sizes and every setting that shapes the run."""
        cfg, model = self.cfg, self.model
        n_params = model.trainable_parameter_count() if hasattr(model, "trainable_parameter_count") \
            else sum(p._data.size for p in model.parameters())
        self.log(f"training {cfg.model} ({n_params:,} parameters) on {cfg.dataset}: {len(self.train_set)} "
                 f"train / {len(self.val_set)} validation / {len(self.test_set)} test images, {cfg.epochs} "
                 f"epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, schedule {cfg.schedule}, "
                 f"augment {'on' if cfg.augment else 'off'}, seed {cfg.seed}, threads {_threads_now()}")

    # ----------------------------------------------------------------- training
    def train_remaining_epochs(self, interrupt):
        """Train, validate and checkpoint every epoch from the start position on."""
        self.interrupt = interrupt
        self.loss_fn = _loss_fn(self.model)
        history = self.summary["history"]
        self.train_seconds_total = sum(h["seconds"] for h in history)
        self.train_images_total = sum(h["images"] for h in history)
        for epoch in range(self.start_epoch, self.cfg.epochs):
            totals = self.train_one_epoch(epoch)
            self.summary["partial_epoch"] = None
            if self.scheduler is not None and not self.schedule_per_step:
                self.scheduler.step()
            val_loss, val_acc = self.validate(epoch)
            improved = self.record_epoch(epoch, totals, val_loss, val_acc)
            self.save_checkpoints(epoch, improved)
            self.log_epoch(self.summary["history"][-1], improved)
            if interrupt["requested"] and epoch + 1 < self.cfg.epochs:
                raise TrainingInterrupted(self.last_path)

    def train_one_epoch(self, epoch):
        """One pass over the training batches (the rest of it, when resuming mid-epoch), with
        progress.  Returns the epoch's totals {"loss_sum", "correct", "seen", "seconds"}."""
        cfg = self.cfg
        resuming_mid_epoch = epoch == self.start_epoch and self.start_batch
        partial = self.summary["partial_epoch"] if resuming_mid_epoch else None
        loss_sum = partial["loss_sum"] if partial else 0.0
        correct = partial["correct"] if partial else 0
        seen = partial["seen"] if partial else 0
        epoch_seconds = partial["seconds"] if partial else 0.0
        first_batch = self.start_batch if epoch == self.start_epoch else 0
        progress = _Progress(cfg.progress, self.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", self.log)
        if progress.bar is not None and first_batch:
            progress.bar.update(first_batch)
        tick = time.perf_counter()
        self.model.train()
        for b, (x, y) in enumerate(self.loader.batches(epoch, first_batch), start=first_batch):
            out = self.model(x)
            loss = self.loss_fn(out, y)
            loss_value = float(loss.item())
            if not math.isfinite(loss_value):
                progress.close()
                raise TrainingDiverged(_diverged(f"the loss became {loss_value}", epoch, b, cfg))
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            if self.schedule_per_step:
                self.scheduler.step()
            n = len(y._data)
            loss_sum += loss_value * n
            correct += int((out._data.argmax(axis=1) == y._data).sum())
            seen += n
            elapsed = epoch_seconds + time.perf_counter() - tick
            progress.update(b + 1, loss_sum / seen, correct / seen, seen / max(elapsed, 1e-9))
            if self.interrupt["requested"] and b + 1 < self.steps_per_epoch:
                progress.close()
                self.summary["partial_epoch"] = {"loss_sum": loss_sum, "correct": correct, "seen": seen,
                                                 "seconds": elapsed}
                self.save_resumable_checkpoint({"epoch": epoch, "batch": b + 1})
                raise TrainingInterrupted(self.last_path)
        progress.close()
        epoch_seconds += time.perf_counter() - tick
        return {"loss_sum": loss_sum, "correct": correct, "seen": seen, "seconds": epoch_seconds}

    def validate(self, epoch):
        """(loss, accuracy) on the validation set, after checking the weights are finite."""
        if len(self.val_y):
            val_loss, val_acc, _ = evaluate_arrays(self.model, self.val_x, self.val_y)
        else:
            val_loss, val_acc = 0.0, 0.0
        # the last step of the epoch may have broken the weights with a finite loss:
        # never write such weights over the last good checkpoint
        if not math.isfinite(val_loss) or not all(np.isfinite(p._data).all() for p in self.model.parameters()):
            raise TrainingDiverged(_diverged("the weights became non-finite", epoch,
                                             self.steps_per_epoch - 1, self.cfg))
        return val_loss, val_acc

    def record_epoch(self, epoch, totals, val_loss, val_acc):
        """Append the epoch to the history; returns whether it is the best so far."""
        seen, seconds = totals["seen"], totals["seconds"]
        self.summary["history"].append({
            "epoch": epoch + 1, "train_loss": totals["loss_sum"] / seen, "train_accuracy": totals["correct"] / seen,
            "val_loss": val_loss, "val_accuracy": val_acc, "lr": _current_lr(self.optimizer),
            "images": seen, "seconds": seconds, "images_per_second": seen / seconds})
        self.train_seconds_total += seconds
        self.train_images_total += seen
        # ties go to the later epoch: with an annealed learning rate it is the better model
        improved = val_acc >= self.summary["best"]["val_accuracy"]
        if improved:
            self.summary["best"] = {"val_accuracy": val_acc, "epoch": epoch + 1}
        return improved

    def log_epoch(self, record, improved):
        """The epoch's line: train and validation loss and accuracy, speed."""
        self.log(f"epoch {record['epoch']}/{self.cfg.epochs}: train loss {record['train_loss']:.4f} acc "
                 f"{100 * record['train_accuracy']:.2f}% | val loss {record['val_loss']:.4f} acc "
                 f"{100 * record['val_accuracy']:.2f}%{' (best)' if improved else ''} | "
                 f"{record['images_per_second']:,.0f} img/s, {record['seconds']:.1f} s")

    # ----------------------------------------------------------------- checkpoints
    def save_checkpoints(self, epoch, improved):
        """After an epoch: last.safetensors always, best.safetensors too when the epoch is the best so far."""
        meta, state = self._checkpoint({"epoch": epoch + 1, "batch": 0})
        if improved:
            checkpoint.save_checkpoint(self.best_path, dict(meta, kind="best"), state)
            self.best_state = {k: v.clone() for k, v in state["model"].items()}  # a snapshot: state_dict() views the live weights
        checkpoint.save_checkpoint(self.last_path, meta, state)

    def save_resumable_checkpoint(self, position):
        """last.safetensors in the middle of an epoch (after Ctrl-C)."""
        checkpoint.save_checkpoint(self.last_path, *self._checkpoint(position))

    def _checkpoint(self, position):
        meta = _checkpoint_meta(self.cfg, self.model, "resumable", position, self.summary)
        return meta, _training_state(self.model, self.optimizer, self.scheduler)

    # ----------------------------------------------------------------- the final report
    def final_report(self, wall_start):
        """Test the best weights; write metrics.json (and the plots) and print the report.
        Returns the metrics."""
        cfg, summary = self.cfg, self.summary
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        test_x, test_y = _prepared(self.test_set, self.eval_tf)
        test_loss, test_acc, preds = evaluate_arrays(self.model, test_x, test_y)
        matrix = confusion_matrix(test_y, preds, len(self.classes))
        wall = time.perf_counter() - wall_start
        metrics = {
            "status": "completed", "model": cfg.model, "dataset": cfg.dataset,
            "test_accuracy": test_acc, "test_loss": test_loss, "test_images": int(len(test_y)),
            "best_epoch": summary["best"]["epoch"], "best_val_accuracy": summary["best"]["val_accuracy"],
            "images_per_second": self.train_images_total / max(self.train_seconds_total, 1e-9),
            "train_seconds": self.train_seconds_total, "wall_time_seconds": wall,
            "history": summary["history"], "confusion_matrix": matrix.tolist(), "classes": self.classes,
            "config": cfg.as_dict(), "checkpoint": self.best_path,
        }
        metrics_path = os.path.join(cfg.out, "metrics.json")
        checkpoint.atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
        plots = _plots(cfg, self.model, summary["history"], matrix, self.classes, test_x, self.log) \
            if cfg.plots else []
        metrics["plots"] = plots
        self.log("")
        self.log(f"test accuracy {100 * test_acc:.2f}% ({int((preds == test_y).sum())}/{len(test_y)}), "
                 f"test loss {test_loss:.4f}, best epoch {summary['best']['epoch']} (validation "
                 f"{100 * summary['best']['val_accuracy']:.2f}%)")
        self.log("confusion matrix (rows: true class, columns: predicted):")
        self.log(format_confusion_matrix(matrix, self.classes))
        self.log(f"training throughput {metrics['images_per_second']:,.0f} images/s; wall time {wall:.1f} s")
        no_plots = " (plots off)" if not cfg.plots else " (no plots: matplotlib not installed)"
        self.log(f"wrote {self.best_path}, {metrics_path}" + (", " + ", ".join(plots) if plots else no_plots))
        return metrics


def _diverged(what, epoch, batch, cfg):
    return (f"{what} at epoch {epoch + 1}, batch {batch + 1}; training stopped. The last good "
            f"checkpoints are kept in {cfg.out} (best.safetensors, last.safetensors where written). Try a smaller "
            f"--lr (now {cfg.lr:g}).")


def _plots(cfg, model, history, matrix, classes, test_x, log):
    """Draw the PNGs (curves, confusion matrix, filters, feature maps); the paths written."""
    try:
        sample = test_x[:1]
        with no_grad():
            model.eval()
            maps = {k: v._data[0] for k, v in model.feature_maps(Tensor(np.ascontiguousarray(sample))).items()}
            model.train()
        return save_plots(cfg.out, history, matrix, classes, filters=model.first_layer_filters(),
                          feature_maps=maps, sample=sample[0, 0])
    except Exception as e:  # plots are a bonus: never lose a finished run over them
        log(f"warning: could not draw the plots ({type(e).__name__}: {e})")
        return []


# --------------------------------------------------------------------------- evaluate
def evaluate_checkpoint(path, dataset=None, data_dir=None, download=False, test_size=None,
                        batch_size=EVAL_BATCH, log=print):
    """Accuracy of the model in checkpoint ``path`` on a dataset's test split."""
    model, meta, _ = load_model_from_checkpoint(path)
    saved = meta.get("train_config", {})
    dataset = dataset or saved.get("dataset", "synthetic")
    if dataset not in DATASETS:
        raise TrainError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    trained_on = saved.get("dataset")
    if trained_on in DATASET_INPUTS and DATASET_INPUTS[trained_on] != DATASET_INPUTS[dataset]:
        (c0, k0), (c1, k1) = DATASET_INPUTS[trained_on], DATASET_INPUTS[dataset]
        raise TrainError(f"{path} was trained on {trained_on} ({c0}-channel images, {k0} classes); "
                         f"{dataset} ({c1}-channel images, {k1} classes) does not fit it")
    if data_dir is not None and not download and not os.path.isdir(data_dir):
        raise TrainError(f"data directory {data_dir} does not exist")
    from minipool import data

    if dataset == "synthetic":
        n = test_size or DATASET_DEFAULTS["synthetic"]["test_size"]
        test = data.SyntheticDigits(n, seed=SYNTHETIC_TEST_SEED)
        classes = list(test.classes)
    else:
        test = open_split(dataset, data_dir, False, download)
        if test_size:
            test = test.subset(np.arange(min(test_size, len(test))))
        classes = list(test.classes)
    mean, std = meta.get("normalization") or test.mean_std()
    _, eval_tf = make_transforms(mean, std, False, dataset)
    x, y = _prepared(test, eval_tf)
    loss, acc, preds = evaluate_arrays(model, x, y, batch_size)
    matrix = confusion_matrix(y, preds, len(classes))
    log(f"{meta['model']['name']} from {path} on {dataset} test ({len(y)} images): accuracy "
        f"{100 * acc:.2f}%, loss {loss:.4f}")
    log(format_confusion_matrix(matrix, classes))
    return {"accuracy": acc, "loss": loss, "images": int(len(y)), "confusion_matrix": matrix.tolist()}
