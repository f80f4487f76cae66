"""Train and evaluate LeNet-5 on minipool's own autograd and kernels.

``python -m minipool train`` calls :func:`run_training`; everything a run does
is decided by a :class:`TrainConfig`.  A run is reproducible: the weights come
from ``seed``, and the order and augmentation of every batch from ``(seed,
epoch, batch)``, so the same seed gives the same history whatever the thread
count, and a run resumed from a checkpoint ends with exactly the weights of an
uninterrupted one.

Files written to ``out``: ``best.npz`` (the weights with the best validation
accuracy, written atomically), ``last.npz`` (a resumable checkpoint written
after every epoch and on Ctrl-C), ``metrics.json``, and PNG plots when
matplotlib is installed.
"""
import dataclasses
import json
import math
import os
import signal
import sys
import time

import numpy as np

from minipool import checkpoint
from minipool.report import confusion_matrix, format_confusion_matrix, save_plots
from minipool.tensor import Tensor, no_grad

__all__ = ["TrainConfig", "TrainError", "TrainingDiverged", "TrainingInterrupted", "run_training",
           "evaluate_checkpoint", "DATASETS", "OPTIMIZERS", "SCHEDULES", "DATASET_DEFAULTS",
           "MODEL_DEFAULTS"]

DATASETS = ("synthetic", "mnist", "fashion-mnist")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "step", "cosine", "onecycle")
# The synthetic defaults finish well within a minute on two cores; the MNIST ones
# reach the accuracy targets (10 epochs on the reduced MNIST: see README).
DATASET_DEFAULTS = {
    "synthetic": dict(epochs=4, optimizer="sgd", lr=0.05, schedule="onecycle", augment=False,
                      train_size=12000, val_size=1000, test_size=2000),
    "mnist": dict(epochs=10, optimizer="sgd", lr=0.1, schedule="onecycle", augment=True,
                  train_size=None, val_size=1000, test_size=None),
    "fashion-mnist": dict(epochs=10, optimizer="sgd", lr=0.1, schedule="onecycle", augment=True,
                          train_size=None, val_size=1000, test_size=None),
}
# Per-model overrides of the above.  The 1998 network's RBF outputs give
# gradients in squared-distance units, so plain SGD needs a much smaller rate
# (the paper used a per-weight, Levenberg-Marquardt-scaled rate instead).
MODEL_DEFAULTS = {
    "lenet5-classic": dict(lr=0.01),
}
SYNTHETIC_TEST_SEED = 2 ** 31 - 1  # one fixed held-out set for every run
EVAL_BATCH = 500


class TrainError(Exception):
    """A problem with the run's input (bad option, missing data, wrong checkpoint)."""


class TrainingDiverged(TrainError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class TrainingInterrupted(Exception):
    """Ctrl-C: a resumable checkpoint was written to ``path``."""

    def __init__(self, path):
        super().__init__(path)
        self.path = path


@dataclasses.dataclass
class TrainConfig:
    """Every choice a training run makes; ``None`` means "the dataset's default"."""

    model: str = "lenet5"
    dataset: str = "synthetic"
    data_dir: str = None
    download: bool = False
    epochs: int = None
    batch_size: int = 64
    optimizer: str = None
    lr: float = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = None
    augment: bool = None
    threads: int = None
    seed: int = 0
    out: str = None
    train_size: int = None
    val_size: int = None
    test_size: int = None
    classic_output: str = "rbf"
    progress: str = "auto"  # auto | bar | lines | none
    plots: bool = True

    def resolved(self):
        """A copy with the dataset's defaults filled in, validated."""
        from minipool.models import MODELS

        if self.model not in MODELS:
            raise TrainError(f"unknown model {self.model!r}; choose one of: {', '.join(MODELS)}")
        if self.dataset not in DATASETS:
            raise TrainError(f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}")
        cfg = dataclasses.replace(self)
        defaults = dict(DATASET_DEFAULTS[cfg.dataset], **MODEL_DEFAULTS.get(cfg.model, {}))
        for key, value in defaults.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        if cfg.out is None:
            cfg.out = os.path.join("runs", f"{cfg.model}-{cfg.dataset}")
        cfg.validate()
        return cfg

    def validate(self):
        def positive_int(name, allow_none=False, allow_zero=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                    value < (0 if allow_zero else 1):
                limit = ">= 0" if allow_zero else ">= 1"
                raise TrainError(f"{name.replace('_', '-')} must be an integer {limit}, got {value!r}")

        if self.optimizer not in OPTIMIZERS:
            raise TrainError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise TrainError(f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.classic_output not in ("rbf", "softmax"):
            raise TrainError(f"classic output must be 'rbf' or 'softmax', got {self.classic_output!r}")
        positive_int("epochs")
        positive_int("batch_size")
        positive_int("threads", allow_none=True)
        positive_int("train_size", allow_none=True)
        positive_int("test_size", allow_none=True)
        positive_int("val_size", allow_zero=True)
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise TrainError(f"learning rate (--lr) must be a number > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise TrainError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not self.weight_decay >= 0:
            raise TrainError(f"weight decay must be >= 0, got {self.weight_decay!r}")
        if self.data_dir is not None and not self.download and not os.path.isdir(self.data_dir):
            raise TrainError(f"data directory {self.data_dir} does not exist (pass --download to "
                             "fetch the files there, or point --data-dir at the folder holding them)")
        if self.progress not in ("auto", "bar", "lines", "none"):
            raise TrainError(f"progress must be auto, bar, lines or none, got {self.progress!r}")

    def model_config(self, seed):
        config = {"seed": seed}
        if self.model == "lenet5-classic":
            config["output"] = self.classic_output
        return config

    def as_dict(self):
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- threads
def set_threads(n):
    """Use ``n`` threads in minipool's kernels (conv im2col/col2im, pooling)."""
    import minipool

    minipool.set_num_threads(int(n))


def pin_blas_to_one_thread():
    """Run NumPy's BLAS on one thread, as training does.

    LeNet-5's GEMMs are small (at most 64x400 by 400x120, or 16x150 by
    150x6400); splitting them over threads costs more than it saves, and on a
    busy machine OpenBLAS's spinning threads are catastrophic: a 64x400x120
    product measured 27 ms with 2 threads under load against 0.18 ms with one.
    One thread also makes every GEMM's rounding independent of the thread count.
    """
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
        return True
    except ImportError:
        return _set_openblas_threads(1)


# glibc malloc settings for training (bytes): serve arrays up to 64 MiB from the heap
# and keep up to 256 MiB of freed heap instead of returning it to the OS
MMAP_THRESHOLD, TRIM_THRESHOLD = 64 << 20, 256 << 20


def keep_freed_memory_for_reuse():
    """Ask glibc's malloc to keep freed megabyte-sized blocks for the next step.

    Every training step allocates and frees the same few-megabyte activations
    and gradients.  By default glibc gives such blocks back to the OS (unmaps
    them, or trims the heap top), so the next step takes a page fault per 4 KiB
    when it first writes them: LeNet-5 training at batch 64 ran ~25% faster
    with the thresholds raised (measured 10.9k/10.2k -> 13.6k/15.0k images/s,
    2 threads).  The setting is process-wide and only changes when memory goes
    back to the OS (at most ``TRIM_THRESHOLD`` bytes stay cached).  Returns
    False where it does not apply (not glibc).
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has these parameters
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _set_openblas_threads(n):
    """NumPy's wheels bundle OpenBLAS; call its set_num_threads through ctypes (best effort)."""
    from minipool._blas import set_blas_num_threads

    return set_blas_num_threads(n)


# --------------------------------------------------------------------------- data
def load_datasets(cfg):
    """(train, validation, test, class names) as ArrayDatasets, per the config."""
    from minipool import data

    if cfg.dataset == "synthetic":
        train = data.SyntheticDigits(cfg.train_size + cfg.val_size, seed=cfg.seed)
        test = data.SyntheticDigits(cfg.test_size, seed=SYNTHETIC_TEST_SEED)
        classes = train.classes
    else:
        cls = data.MNIST if cfg.dataset == "mnist" else data.FashionMNIST
        try:
            train = cls(cfg.data_dir, train=True, download=cfg.download)
            test = cls(cfg.data_dir, train=False, download=cfg.download)
        except (data.DatasetNotFoundError, data.IDXError) as e:
            raise TrainError(str(e)) from None
        classes = cls.classes
        if cfg.test_size is not None:
            test = test.subset(np.arange(min(cfg.test_size, len(test))), "test")
    if cfg.val_size >= len(train):
        raise TrainError(f"val-size {cfg.val_size} leaves no training images (the training set "
                         f"has {len(train)})")
    order = np.random.default_rng([cfg.seed, 0xDA7A]).permutation(len(train))
    val = train.subset(np.sort(order[len(train) - cfg.val_size:]), "validation")
    train_idx = np.sort(order[:len(train) - cfg.val_size])
    if cfg.train_size is not None:
        train_idx = train_idx[:cfg.train_size]
    train = train.subset(train_idx, "train")
    return train, val, test, list(classes)


def make_transforms(mean, std, augment):
    from minipool.data import transforms as T

    pad, norm = T.Pad(2), T.Normalize(mean, std)
    evaluation = T.Compose([pad, norm])
    if not augment:
        return evaluation, evaluation
    jitter = T.RandomAffine(degrees=8, translate=(0.06, 0.06), scale=(0.92, 1.08))
    return T.Compose([pad, jitter, norm]), evaluation


def _prepared(dataset, transform):
    images, labels = dataset.get_batch(np.arange(len(dataset)))
    return transform(images), labels


# --------------------------------------------------------------------------- optimisation
def build_optimizer(cfg, params):
    from minipool import optim

    if cfg.optimizer == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(cfg, optimizer, steps_per_epoch):
    """The schedule and whether it steps per batch (one-cycle) or per epoch."""
    from minipool import optim

    if cfg.schedule == "none":
        return None, False
    if cfg.schedule == "step":
        return optim.StepLR(optimizer, step_size=max(1, cfg.epochs // 3), gamma=0.1), False
    if cfg.schedule == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=cfg.epochs), False
    return optim.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch), True


def _current_lr(optimizer):
    return float(optimizer.param_groups[0]["lr"])


def _loss_fn(model):
    if hasattr(model, "loss"):
        return model.loss
    import minipool.nn.functional as F
    return F.cross_entropy


def evaluate_arrays(model, images, labels, batch_size=EVAL_BATCH):
    """(mean loss, accuracy, predictions) of ``model`` on prepared float32 images."""
    loss_fn = _loss_fn(model)
    model.eval()
    total_loss, preds = 0.0, []
    with no_grad():
        for start in range(0, len(labels), batch_size):
            x = Tensor(np.ascontiguousarray(images[start:start + batch_size]))
            y = Tensor(labels[start:start + batch_size])
            out = model(x)
            total_loss += float(loss_fn(out, y).item()) * len(y.data)
            preds.append(out.data.argmax(axis=1))
    model.train()
    preds = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    n = max(len(labels), 1)
    return total_loss / n, float((preds == labels).mean()) if len(labels) else 0.0, preds


# --------------------------------------------------------------------------- progress
class _Progress:
    """A tqdm bar on a terminal, a few plain lines otherwise (or nothing)."""

    def __init__(self, mode, total, desc, log):
        self.total, self.desc, self.log = total, desc, log
        self.bar = None
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        if mode == "bar":
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, leave=True, unit="batch", dynamic_ncols=True)
            except ImportError:
                mode = "lines"
        self.mode = mode
        self.every = max(1, -(-total // 4))

    def update(self, done, loss, accuracy, rate):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {loss:.4f} acc {100 * accuracy:.2f}% {rate:,.0f} img/s",
                                     refresh=False)
        elif self.mode == "lines" and (done % self.every == 0 and done < self.total):
            self.log(f"  {self.desc} [{done}/{self.total}] loss {loss:.4f} acc {100 * accuracy:.2f}% "
                     f"{rate:,.0f} img/s")

    def close(self):
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- checkpoints
def _training_state(model, optimizer, scheduler):
    from minipool import _random

    # The loader needs no saved RNG (its draws depend on seed/epoch/batch only); the shared
    # generator is saved for layers that draw from it during training (dropout).
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": _random.default_generator().bit_generator.state}


def _checkpoint_meta(cfg, model, kind, position, run):
    """Everything but the arrays.  ``position`` = {"epoch": e, "batch": b}: the next step to
    run is batch b (0-based) of epoch e (0-based); {"epoch": epochs, "batch": 0} is a finished run."""
    import minipool

    return {"kind": kind, "minipool_version": minipool.__version__,
            "model": {"name": model.name, "config": cfg.model_config(cfg.seed)},
            "train_config": cfg.as_dict(), "normalization": run["normalization"],
            "position": position, "history": run["history"], "best": run["best"],
            "partial_epoch": run.get("partial_epoch"), "classes": run["classes"]}


def load_model_from_checkpoint(path):
    """(model, meta) from a checkpoint written by a training run."""
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
def _resume_config(cfg, explicit, meta, path):
    """The checkpoint's config, with --epochs/--out/--threads/--progress taken from the command
    line; any other option given explicitly must agree with the checkpoint."""
    saved = TrainConfig(**{k: v for k, v in meta["train_config"].items()
                           if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    for key in explicit:
        if key in ("epochs", "out", "threads", "progress", "data_dir", "download", "plots"):
            continue
        if getattr(cfg, key) != getattr(saved, key):
            raise TrainError(f"--resume {path}: the checkpoint was trained with "
                             f"{key.replace('_', '-')}={getattr(saved, key)!r}, but "
                             f"{getattr(cfg, key)!r} was asked for; drop that option to resume")
    laid_out = saved.schedule in ("onecycle", "cosine", "step")
    if "epochs" in explicit and cfg.epochs != saved.epochs and laid_out:
        raise TrainError(f"--resume {path}: the {saved.schedule} schedule was laid out for "
                         f"{saved.epochs} epochs; changing --epochs on resume needs --schedule none")
    for key in ("epochs", "threads", "progress", "data_dir", "download", "plots"):
        if key in explicit:
            setattr(saved, key, getattr(cfg, key))
    saved.out = cfg.out if "out" in explicit else os.path.dirname(os.path.abspath(path))
    return saved


def run_training(config, resume=None, explicit=(), log=print):
    """Train per ``config`` (a TrainConfig), optionally resuming from the checkpoint ``resume``.

    ``explicit`` names the options the user set (they must agree with a
    resumed checkpoint).  Returns the metrics dict also written to
    ``metrics.json``.  Raises TrainError for bad input, TrainingDiverged on a
    non-finite loss, TrainingInterrupted after Ctrl-C (checkpoint saved).
    """
    from minipool.models import build_model

    wall_start = time.perf_counter()
    resumed = None
    if resume is not None:
        model, meta, state = load_model_from_checkpoint(resume)
        if "position" not in meta or "train_config" not in meta:
            raise TrainError(f"{resume} is not a resumable training checkpoint")
        if "model" in explicit and config.model != meta["model"]["name"]:
            raise TrainError(f"--resume {resume}: the checkpoint holds a {meta['model']['name']} model, "
                             f"not {config.model}")
        config = _resume_config(config, explicit, meta, resume)
        resumed = (model, meta, state)
    cfg = config.resolved()
    if cfg.threads is not None:
        set_threads(cfg.threads)
    pin_blas_to_one_thread()
    keep_freed_memory_for_reuse()

    train_set, val_set, test_set, classes = load_datasets(cfg)
    mean, std = train_set.mean_std()
    train_tf, eval_tf = make_transforms(mean, std, cfg.augment)
    val_x, val_y = _prepared(val_set, eval_tf)

    from minipool.data import DataLoader

    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                        drop_last=False, transform=train_tf)
    steps_per_epoch = len(loader)
    if resumed is None:
        from minipool import _random
        _random.manual_seed([cfg.seed, 0xD209])  # for layers that draw while training (dropout)
        model = build_model(cfg.model, **cfg.model_config(cfg.seed))
    else:
        model = resumed[0]
    optimizer = build_optimizer(cfg, list(model.parameters()))
    scheduler, per_step = build_scheduler(cfg, optimizer, steps_per_epoch)
    run = {"history": [], "best": {"val_accuracy": -1.0, "epoch": 0}, "classes": classes,
           "normalization": [mean, std], "partial_epoch": None}
    start_epoch, start_batch = 0, 0
    if resumed is not None:
        _, meta, state = resumed
        optimizer.load_state_dict(state["optimizer"])
        if state.get("rng") is not None:
            from minipool import _random
            _random.default_generator().bit_generator.state = state["rng"]
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        run["history"] = list(meta["history"])
        run["best"] = dict(meta["best"])
        start_epoch, start_batch = meta["position"]["epoch"], meta["position"]["batch"]
        if start_batch:
            run["partial_epoch"] = meta.get("partial_epoch")
        if start_epoch >= cfg.epochs:
            log(f"{resume} already finished its {cfg.epochs} epochs: writing the final report only")
        else:
            log(f"resuming from {resume}: epoch {start_epoch + 1}, batch {start_batch}")

    os.makedirs(cfg.out, exist_ok=True)
    best_path = os.path.join(cfg.out, "best.npz")
    last_path = os.path.join(cfg.out, "last.npz")
    best_state = None
    if resumed is not None and os.path.isfile(best_path):
        try:
            best_state = checkpoint.load_checkpoint(best_path)[1]["model"]
        except checkpoint.CheckpointError:
            best_state = None

    n_params = model.trainable_parameter_count() if hasattr(model, "trainable_parameter_count") \
        else sum(p.data.size for p in model.parameters())
    log(f"training {cfg.model} ({n_params:,} parameters) on {cfg.dataset}: {len(train_set)} train / "
        f"{len(val_set)} validation / {len(test_set)} test images, {cfg.epochs} epochs, batch "
        f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, schedule {cfg.schedule}, augment "
        f"{'on' if cfg.augment else 'off'}, seed {cfg.seed}, threads {_threads_now()}")

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

    loss_fn = _loss_fn(model)
    train_seconds_total = sum(h["seconds"] for h in run["history"])
    train_images_total = sum(h["images"] for h in run["history"])
    try:
        for epoch in range(start_epoch, cfg.epochs):
            partial = run.get("partial_epoch") if epoch == start_epoch and start_batch else None
            loss_sum = partial["loss_sum"] if partial else 0.0
            correct = partial["correct"] if partial else 0
            seen = partial["seen"] if partial else 0
            epoch_seconds = partial["seconds"] if partial else 0.0
            first_batch = start_batch if epoch == start_epoch else 0
            progress = _Progress(cfg.progress, steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", log)
            if progress.bar is not None and first_batch:
                progress.bar.update(first_batch)
            tick = time.perf_counter()
            model.train()
            for b, (x, y) in enumerate(loader.batches(epoch, first_batch), start=first_batch):
                out = model(x)
                loss = loss_fn(out, y)
                loss_value = float(loss.item())
                if not math.isfinite(loss_value):
                    progress.close()
                    raise TrainingDiverged(_diverged(f"the loss became {loss_value}", epoch, b, cfg))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if per_step:
                    scheduler.step()
                n = len(y.data)
                loss_sum += loss_value * n
                correct += int((out.data.argmax(axis=1) == y.data).sum())
                seen += n
                elapsed = epoch_seconds + time.perf_counter() - tick
                progress.update(b + 1, loss_sum / seen, correct / seen, seen / max(elapsed, 1e-9))
                if interrupt["requested"] and b + 1 < steps_per_epoch:
                    progress.close()
                    run["partial_epoch"] = {"loss_sum": loss_sum, "correct": correct, "seen": seen,
                                            "seconds": elapsed}
                    checkpoint.save_checkpoint(
                        last_path, _checkpoint_meta(cfg, model, "resumable",
                                                    {"epoch": epoch, "batch": b + 1}, run),
                        _training_state(model, optimizer, scheduler))
                    raise TrainingInterrupted(last_path)
            progress.close()
            epoch_seconds += time.perf_counter() - tick
            run["partial_epoch"] = None
            if scheduler is not None and not per_step:
                scheduler.step()
            val_loss, val_acc, _ = evaluate_arrays(model, val_x, val_y) if len(val_y) else (0.0, 0.0, None)
            # the last step of the epoch may have broken the weights with a finite loss:
            # never write such weights over the last good checkpoint
            if not math.isfinite(val_loss) or not all(np.isfinite(p.data).all() for p in model.parameters()):
                raise TrainingDiverged(_diverged("the weights became non-finite", epoch,
                                                 steps_per_epoch - 1, cfg))
            record = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                      "val_loss": val_loss, "val_accuracy": val_acc, "lr": _current_lr(optimizer),
                      "images": seen, "seconds": epoch_seconds, "images_per_second": seen / epoch_seconds}
            run["history"].append(record)
            train_seconds_total += epoch_seconds
            train_images_total += seen
            # ties go to the later epoch: with an annealed learning rate it is the better model
            improved = val_acc >= run["best"]["val_accuracy"]
            if improved:
                run["best"] = {"val_accuracy": val_acc, "epoch": epoch + 1}
            position = {"epoch": epoch + 1, "batch": 0}
            meta = _checkpoint_meta(cfg, model, "resumable", position, run)
            state = _training_state(model, optimizer, scheduler)
            if improved:
                checkpoint.save_checkpoint(best_path, dict(meta, kind="best"), state)
                best_state = state["model"]
            checkpoint.save_checkpoint(last_path, meta, state)
            log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f} acc "
                f"{100 * record['train_accuracy']:.2f}% | val loss {val_loss:.4f} acc {100 * val_acc:.2f}%"
                f"{' (best)' if improved else ''} | {record['images_per_second']:,.0f} img/s, "
                f"{epoch_seconds:.1f} s")
            if interrupt["requested"] and epoch + 1 < cfg.epochs:
                raise TrainingInterrupted(last_path)
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)

    # -- final report on the test set, with the best weights --------------------------------
    if best_state is not None:
        model.load_state_dict(best_state)
    test_x, test_y = _prepared(test_set, eval_tf)
    test_loss, test_acc, preds = evaluate_arrays(model, test_x, test_y)
    matrix = confusion_matrix(test_y, preds, len(classes))
    wall = time.perf_counter() - wall_start
    metrics = {
        "status": "completed", "model": cfg.model, "dataset": cfg.dataset,
        "test_accuracy": test_acc, "test_loss": test_loss, "test_images": int(len(test_y)),
        "best_epoch": run["best"]["epoch"], "best_val_accuracy": run["best"]["val_accuracy"],
        "images_per_second": train_images_total / max(train_seconds_total, 1e-9),
        "train_seconds": train_seconds_total, "wall_time_seconds": wall,
        "history": run["history"], "confusion_matrix": matrix.tolist(), "classes": classes,
        "config": cfg.as_dict(), "checkpoint": best_path,
    }
    checkpoint.atomic_write_text(os.path.join(cfg.out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    plots = _plots(cfg, model, run["history"], matrix, classes, test_x, log) if cfg.plots else []
    metrics["plots"] = plots
    log("")
    log(f"test accuracy {100 * test_acc:.2f}% ({int((preds == test_y).sum())}/{len(test_y)}), "
        f"test loss {test_loss:.4f}, best epoch {run['best']['epoch']} (validation "
        f"{100 * run['best']['val_accuracy']:.2f}%)")
    log("confusion matrix (rows: true class, columns: predicted):")
    log(format_confusion_matrix(matrix, classes))
    log(f"training throughput {metrics['images_per_second']:,.0f} images/s; wall time {wall:.1f} s")
    no_plots = " (plots off)" if not cfg.plots else " (no plots: matplotlib not installed)"
    log(f"wrote {best_path}, {os.path.join(cfg.out, 'metrics.json')}"
        + (", " + ", ".join(plots) if plots else no_plots))
    return metrics


def _diverged(what, epoch, batch, cfg):
    return (f"{what} at epoch {epoch + 1}, batch {batch + 1}; training stopped. The last good "
            f"checkpoints are kept in {cfg.out} (best.npz, last.npz where written). Try a smaller "
            f"--lr (now {cfg.lr:g}).")


def _threads_now():
    import minipool
    return minipool.get_num_threads()


def _plots(cfg, model, history, matrix, classes, test_x, log):
    try:
        sample = test_x[:1]
        with no_grad():
            model.eval()
            maps = {k: v.data[0] for k, v in model.feature_maps(Tensor(np.ascontiguousarray(sample))).items()}
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
    pin_blas_to_one_thread()
    saved = meta.get("train_config", {})
    dataset = dataset or saved.get("dataset", "synthetic")
    if dataset not in DATASETS:
        raise TrainError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if data_dir is not None and not download and not os.path.isdir(data_dir):
        raise TrainError(f"data directory {data_dir} does not exist")
    from minipool import data

    if dataset == "synthetic":
        n = test_size or DATASET_DEFAULTS["synthetic"]["test_size"]
        test = data.SyntheticDigits(n, seed=SYNTHETIC_TEST_SEED)
        classes = list(test.classes)
    else:
        cls = data.MNIST if dataset == "mnist" else data.FashionMNIST
        try:
            test = cls(data_dir, train=False, download=download)
        except (data.DatasetNotFoundError, data.IDXError) as e:
            raise TrainError(str(e)) from None
        if test_size:
            test = test.subset(np.arange(min(test_size, len(test))))
        classes = list(cls.classes)
    mean, std = meta.get("normalization") or test.mean_std()
    _, eval_tf = make_transforms(mean, std, False)
    x, y = _prepared(test, eval_tf)
    loss, acc, preds = evaluate_arrays(model, x, y, batch_size)
    matrix = confusion_matrix(y, preds, len(classes))
    log(f"{meta['model']['name']} from {path} on {dataset} test ({len(y)} images): accuracy "
        f"{100 * acc:.2f}%, loss {loss:.4f}")
    log(format_confusion_matrix(matrix, classes))
    return {"accuracy": acc, "loss": loss, "images": int(len(y)), "confusion_matrix": matrix.tolist()}
