"""``experiment pooling``: one LeNet-5-style network, each pooling kind in place of max.

For every pooling kind of :data:`minipool.experiments.training.POOLINGS` the
same network (same weights at the start for a seed, same batches) is trained
on the full training set and on a reduced one (where overfitting shows);
measured: test error, train error, their gap and seconds per epoch.

>>> "stochastic" in VARIANTS and "subsampling" in VARIANTS
True
"""
import numpy as np

from minipool.experiments import training
from minipool.experiments.runner import RunSpec

NAME = "pooling"
VARIANTS = tuple(training.POOLINGS)
METRICS = ("test_error", "train_error", "gap", "seconds_per_epoch", "train_images", "epochs", "parameters")
# the runs are in two groups: the full training set and the reduced one
TAGS = {"": "full training set", "small": "reduced training set"}

# Published MNIST figures, as train / test error where the paper gives both.  None of these
# is the network trained here: they are context, not targets.
PUBLISHED = {
    "max": "0.04% / 0.55% (Zeiler & Fergus 2013, 3 conv layers of 64 maps, 280 epochs)",
    "avg": "0.57% / 0.83% (Zeiler & Fergus 2013, same network)",
    "stochastic": "0.33% / 0.47% (Zeiler & Fergus 2013, same network)",
    "subsampling": "- / 0.95% (LeCun et al. 1998, LeNet-5, no distortions)",
}


def missing_variants() -> dict:
    return {k: v for k, v in training.available_poolings().items() if v}


def settings(quick, dataset, data_dir, epochs, train_size, test_size) -> dict:
    """The numbers that shape every run (part of each run's identity: changing one re-runs)."""
    if quick:
        base = dict(train_size=1000, test_size=500, epochs=2, small_size=300, small_epochs=4)
    elif dataset == "mnist":
        # all training images in --data-dir (the project's reduced MNIST has 15,000), as the trainer
        base = dict(train_size=None, test_size=None, epochs=10, small_size=2000, small_epochs=60)
    else:
        base = dict(train_size=12000, test_size=2000, epochs=4, small_size=2000, small_epochs=20)
    if epochs is not None:
        # --epochs sets the full-data runs; the reduced-data runs keep their ratio
        base["small_epochs"] = max(1, round(base["small_epochs"] * epochs / base["epochs"]))
        base["epochs"] = epochs
    if train_size is not None:
        base["train_size"] = train_size
    if test_size is not None:
        base["test_size"] = test_size
    if base["train_size"] is not None:
        base["small_size"] = min(base["small_size"], base["train_size"])
    return dict(base, dataset=dataset, data_dir=data_dir, batch_size=64, lr=0.05, train_error_images=10000)


def grid(variants, seeds, s) -> list:
    full = {k: s[k] for k in ("dataset", "data_dir", "train_size", "test_size", "epochs", "batch_size", "lr",
                              "train_error_images")}
    small = dict(full, train_size=s["small_size"], epochs=s["small_epochs"])
    return ([RunSpec(NAME, v, seed, full) for seed in seeds for v in variants]
            + [RunSpec(NAME, v, seed, small, "small") for seed in seeds for v in variants])


def train_model(variant, seed, s):
    """(model, prepared train x, train y, prepared test x, test y, seconds per epoch)."""
    xtr, ytr, xte, yte = training.load_digits(s["dataset"], s["data_dir"], s["train_size"], s["test_size"])
    xtr, xte = training.lenet_input(xtr), training.lenet_input(xte)
    model = training.PooledLeNet(variant, seed=seed)
    seconds = training.train_classifier(model, xtr, ytr, s["epochs"], seed, s["batch_size"], s["lr"])
    return model, xtr, ytr, xte, yte, seconds


def run(spec):
    s = spec.settings
    model, xtr, ytr, xte, yte, seconds = train_model(spec.variant, spec.seed, s)
    # train error on a fixed subset of at most train_error_images (the whole set when smaller)
    n = min(len(ytr), s["train_error_images"])
    keep = np.sort(np.random.default_rng(0x7E57).permutation(len(ytr))[:n])
    test_error = training.error_rate(model, xte, yte)
    train_error = training.error_rate(model, xtr[keep], ytr[keep])
    metrics = {"test_error": test_error, "train_error": train_error, "gap": test_error - train_error,
               "seconds_per_epoch": seconds, "train_images": int(len(ytr)), "epochs": s["epochs"],
               "parameters": int(sum(p._data.size for p in model.parameters()))}
    return metrics, {}


def summary(m) -> str:
    return (f"test error {100 * m['test_error']:.2f}%, train error {100 * m['train_error']:.2f}%, "
            f"{m['seconds_per_epoch']:.1f} s/epoch")


# how results.md shows each metric: (column title, scale, digits)
COLUMNS = (("test_error", "test error %", 100, 2), ("train_error", "train error %", 100, 2),
           ("gap", "gap (test - train) %", 100, 2), ("seconds_per_epoch", "s / epoch", 1, 2))


def describe(variant) -> str:
    return training.POOLINGS[variant][0]


def pictures(plan, records, out, plt):
    """Bar chart of test and train error per pooling kind (mean over seeds, both data sizes)."""
    from minipool.experiments.report import grouped

    groups = grouped(records)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=False)
    for ax, tag in zip(axes, ("", "small")):
        names = [v for v in VARIANTS if (v, tag) in groups]
        if not names:
            ax.set_visible(False)
            continue
        pos = np.arange(len(names))
        for off, metric, label in ((-0.2, "test_error", "test"), (0.2, "train_error", "train")):
            vals = [100 * np.mean([r["metrics"][metric] for r in groups[(v, tag)]]) for v in names]
            ax.bar(pos + off, vals, 0.4, label=label)
        ax.set_xticks(pos, names, rotation=30)
        ax.set_ylabel("error %")
        n = groups[(names[0], tag)][0]["metrics"]["train_images"]
        ax.set_title(f"{TAGS[tag]} ({n} images)")
        ax.legend()
    fig.tight_layout()
    path = f"{out}/pooling_errors.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
